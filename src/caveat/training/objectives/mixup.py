"""Mixup on pooled hidden states (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization";
for sentences on hidden states: Guo et al. 2019, "Augmenting Data with Mixup for Sentence Classification")."""

from __future__ import annotations

import numpy as np
import torch

from caveat.training.objectives.base import OBJECTIVES, Objective


@OBJECTIVES.register("mixup")
class Mixup(Objective):
    """``loss = CE(f(x), y) + alpha * [lam CE(h(z_mix), y) + (1 - lam) CE(h(z_mix), y_perm)]``

    with ``z_mix = lam z + (1 - lam) z[perm]`` over pooled features ``z`` and ``lam ~ Beta(b, b)``.
    One encoder pass serves both terms.
    """

    name = "mixup"
    supports_tokens = False

    def step(self, model, batch, accelerator):
        labels = batch["labels"]
        perm = torch.randperm(labels.shape[0], device=labels.device)
        beta = self.config.mixup.beta
        lam = float(np.random.beta(beta, beta))
        out = model(**self.inputs(batch), mixup=(perm, lam) if self.alpha > 0 else None)
        task = self.task_loss(out.logits, labels)
        reg = torch.zeros((), device=task.device)
        if self.alpha > 0:
            reg = lam * self.task_loss(out.mixed_logits, labels) + (1 - lam) * self.task_loss(
                out.mixed_logits, labels[perm]
            )
        loss = task + self.alpha * reg
        accelerator.backward(loss)
        return {"loss": loss.item(), "task_loss": task.item(), "reg": reg.item(), "lam": lam}
