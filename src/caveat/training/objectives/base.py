"""The objective interface and the shared task loss."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.types import Task

OBJECTIVES: Registry[type[Objective]] = Registry("objective")


class Objective:
    """Computes ``task_loss + alpha * R`` for one batch and back-propagates it.

    ``step`` returns plain floats for logging (``loss``, ``task_loss``, ``reg`` and extras).
    Subclasses that need several backward passes wrap all but the last in ``self.accumulate``
    so that DDP synchronises gradients once per step.
    """

    supports_tokens = True
    # Whether ``step`` reads a perturbed view of each example from the batch (``perturbed_input_ids``,
    # ``perturbed_attention_mask``, ``perturbed``): ``train.augment`` then pairs its edits with their clean
    # rows instead of adding them as rows of their own, and the config requires it.
    needs_views = False

    def __init__(self, config, task: Task):
        self.config = config
        self.alpha = float(config.alpha)
        self.task = Task(task)
        if self.task is Task.TOKEN_CLASSIFICATION and not self.supports_tokens:
            raise ConfigError(
                f"train.objective={self.name!r} supports text-classification only; for token-classification choose one "
                f"of: {', '.join(n for n in OBJECTIVES.names() if OBJECTIVES.get(n).supports_tokens)}"
            )

    name = "base"

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (with the configured label smoothing); -100 labels are ignored."""
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),  # (B*T, C) for tokens, (B, C) for sequences
            labels.reshape(-1),
            ignore_index=-100,
            label_smoothing=self.config.label_smoothing,
        )

    @staticmethod
    def inputs(batch: dict) -> dict:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @staticmethod
    def accumulate(accelerator, model, *, last: bool):
        """Context for a forward+backward whose gradients must not be all-reduced yet."""
        return nullcontext() if last else accelerator.no_sync(model)

    def step(self, model, batch: dict, accelerator) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError


def build_objective(config, task: Task) -> Objective:
    """Instantiate ``config.objective`` (a TrainConfig) for ``task``."""
    return OBJECTIVES.get(config.objective)(config, task)
