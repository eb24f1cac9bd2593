"""R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caveat.training.objectives.base import OBJECTIVES, Objective


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid rows of ``(KL(p_a||p_b) + KL(p_b||p_a)) / 2``.

    logits_* : (R, C); valid : (R,) bool.
    """
    log_a = F.log_softmax(logits_a, dim=-1)
    log_b = F.log_softmax(logits_b, dim=-1)
    kl = (log_a.exp() * (log_a - log_b)).sum(-1) + (log_b.exp() * (log_b - log_a)).sum(-1)  # (R,)
    return (kl * valid).sum() / valid.sum().clamp(min=1) / 2


@OBJECTIVES.register("rdrop")
class RDrop(Objective):
    """``loss = (CE_1 + CE_2) / 2 + alpha * symKL(p_1, p_2)`` over two dropout passes of the same batch.

    The two passes run as one forward over the batch stacked twice. Note the CE terms are averaged
    (the paper sums them), so the paper's alpha corresponds to ``alpha / 2`` here.
    """

    name = "rdrop"

    def step(self, model, batch, accelerator):
        labels = batch["labels"]
        if self.alpha == 0:
            out = model(**self.inputs(batch))
            loss = self.task_loss(out.logits, labels)
            accelerator.backward(loss)
            return {"loss": loss.item(), "task_loss": loss.item(), "reg": 0.0}
        doubled = {k: torch.cat([v, v]) for k, v in self.inputs(batch).items()}  # (2B, T)
        logits_a, logits_b = model(**doubled).logits.chunk(2)  # (B, C) or (B, T, C) each
        task = (self.task_loss(logits_a, labels) + self.task_loss(logits_b, labels)) / 2
        classes = logits_a.shape[-1]
        if logits_a.dim() == 3:
            valid = batch["attention_mask"].reshape(-1).bool()  # every real sub-token, labelled or not
        else:
            valid = torch.ones(labels.shape[0], dtype=torch.bool, device=labels.device)
        reg = symmetric_kl(logits_a.reshape(-1, classes), logits_b.reshape(-1, classes), valid)
        loss = task + self.alpha * reg
        accelerator.backward(loss)
        return {"loss": loss.item(), "task_loss": task.item(), "reg": reg.item()}
