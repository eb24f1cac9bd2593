"""Training objectives, each ``loss = task_loss + alpha * R``, registered by name (``distill`` mixes its
two terms by ``train.distill.weight`` instead).

An objective runs its own backward passes: adversarial ones need the gradient with respect to the
embeddings before the final loss is known.
"""

# Importing the modules registers their objectives.
from caveat.training.objectives import adversarial, consistency, distill, erm, mixup, rdrop  # noqa: E402,F401
from caveat.training.objectives.base import OBJECTIVES, Objective, build_objective

__all__ = ["OBJECTIVES", "Objective", "build_objective"]
