"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"):
one student trained on a teacher's soft targets, typically a deep ensemble's mean probabilities, so that
it keeps (close to) the ensemble's calibration at the cost of one model.

The soft targets are computed once before training (``caveat.training.teacher``) and reach the objective
as ``batch["soft_labels"]`` (B, C), in the student's label order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caveat.errors import ConfigError
from caveat.training.objectives.base import OBJECTIVES, Objective


def distill_loss(logits: torch.Tensor, soft_labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · mean_b KL(q_b || softmax(logits_b / T))``: the soft-target term of Hinton et al. 2015.

    logits : (B, C), the student's; soft_labels : (B, C), the teacher's probabilities ``q`` at temperature T
    (rows sum to 1). The T² keeps the gradient's size independent of T (it scales as 1/T² otherwise).
    A class with ``q = 0`` adds nothing (``0 · log 0 = 0``).
    """
    log_student = F.log_softmax(logits / temperature, dim=-1)  # (B, C)
    kl = F.kl_div(log_student, soft_labels.to(log_student.dtype), reduction="none").sum(-1)  # (B,)
    return temperature**2 * kl.mean()


@OBJECTIVES.register("distill")
class Distill(Objective):
    """``loss = (1 - w) · CE(f(x), y) + w · T² · KL(q_T || softmax(f(x) / T))``.

    ``q_T`` is the teacher's probabilities at temperature T (for an ensemble, the mean of its members'
    ``softmax(logits / T)``), ``w = train.distill.weight`` and ``T = train.distill.temperature``; the
    teacher is ``train.distill.teacher``. Logged as ``task_loss`` = CE, ``reg`` = T² · KL. The CE term
    carries the configured label smoothing (with ``w = 1`` it has no effect). ``alpha`` switches the
    teacher off at 0 (plain ERM, as for every objective) and is otherwise unused: the mix is ``w``.
    Text classification only.
    """

    name = "distill"
    supports_tokens = False

    def __init__(self, config, task):
        super().__init__(config, task)
        self.temperature = float(config.distill.temperature)
        self.weight = float(config.distill.weight)

    def step(self, model, batch, accelerator):
        out = model(**self.inputs(batch))
        task = self.task_loss(out.logits, batch["labels"])
        if self.alpha == 0:
            accelerator.backward(task)
            return {"loss": task.item(), "task_loss": task.item(), "reg": 0.0}
        if "soft_labels" not in batch:
            raise ConfigError(
                "train.objective=distill found a batch without the teacher's soft targets (soft_labels): train "
                "through caveat train / Trainer with train.distill.teacher set, which computes them"
            )
        reg = distill_loss(out.logits, batch["soft_labels"], self.temperature)
        loss = (1 - self.weight) * task + self.weight * reg
        accelerator.backward(loss)
        return {"loss": loss.item(), "task_loss": task.item(), "reg": reg.item()}
