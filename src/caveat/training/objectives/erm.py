"""Empirical risk minimisation: cross-entropy, optionally label-smoothed (Szegedy et al. 2016)."""

from __future__ import annotations

from caveat.training.objectives.base import OBJECTIVES, Objective


@OBJECTIVES.register("erm")
class ERM(Objective):
    """``loss = CE(f(x), y)``; R = 0, so ``alpha`` has no effect."""

    name = "erm"

    def step(self, model, batch, accelerator):
        out = model(**self.inputs(batch))
        loss = self.task_loss(out.logits, batch["labels"])
        accelerator.backward(loss)
        value = loss.item()
        return {"loss": value, "task_loss": value, "reg": 0.0}
