"""Adversarial training in embedding space: FGM, PGD-K and FreeLB-K.

The perturbation ``delta`` (B, T, D) is added to the word embeddings; its size is measured per
example as the L2 norm over all real (non-padding) positions and dimensions.
"""

from __future__ import annotations

import torch

from caveat.training.objectives.base import OBJECTIVES, Objective


def example_norm(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm of ``x * mask``: x (B, T, D), mask (B, T) -> (B, 1, 1)."""
    masked = x * mask.unsqueeze(-1).to(x.dtype)
    return masked.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)


def normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unit per-example L2 norm over real positions; padding positions set to 0. (B, T, D)."""
    return x * mask.unsqueeze(-1).to(x.dtype) / example_norm(x, mask)


def project(delta: torch.Tensor, epsilon: float, mask: torch.Tensor) -> torch.Tensor:
    """Project each example's ``delta`` onto the L2 ball of radius ``epsilon``. (B, T, D)."""
    norm = example_norm(delta, mask)
    return delta * mask.unsqueeze(-1).to(delta.dtype) * torch.clamp(epsilon / norm, max=1.0)


class _Adversarial(Objective):
    def __init__(self, config, task):
        super().__init__(config, task)
        self.adv = config.adv

    def _clean(self, model, batch, accelerator):
        """Clean forward+backward (not yet synchronised), keeping the embedding gradient."""
        with self.accumulate(accelerator, model, last=False):
            out = model(**self.inputs(batch), keep_embeddings=True)
            loss = self.task_loss(out.logits, batch["labels"])
            accelerator.backward(loss)
        return loss, out.embeddings.grad.detach()

    def _stats(self, clean: float, reg: float, delta: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        return {
            "loss": clean + self.alpha * reg,
            "task_loss": clean,
            "reg": reg,
            "delta_norm": example_norm(delta, mask).mean().item(),
        }

    def _erm(self, model, batch, accelerator):
        out = model(**self.inputs(batch))
        loss = self.task_loss(out.logits, batch["labels"])
        accelerator.backward(loss)
        return {"loss": loss.item(), "task_loss": loss.item(), "reg": 0.0}


@OBJECTIVES.register("fgm")
class FGM(_Adversarial):
    """Fast gradient method (Miyato et al. 2017, "Adversarial Training Methods for Semi-Supervised
    Text Classification"): ``delta = epsilon * g / ||g||`` with ``g`` the gradient of the clean loss
    with respect to the embeddings; ``loss = CE(x) + alpha * CE(x + delta)``. Costs two passes.
    """

    name = "fgm"

    def step(self, model, batch, accelerator):
        if self.alpha == 0:
            return self._erm(model, batch, accelerator)
        mask = batch["attention_mask"]
        clean, grad = self._clean(model, batch, accelerator)
        delta = self.adv.epsilon * normalize(grad, mask)
        out = model(**self.inputs(batch), delta=delta)
        adv = self.task_loss(out.logits, batch["labels"])
        accelerator.backward(self.alpha * adv)
        return self._stats(clean.item(), adv.item(), delta, mask)


@OBJECTIVES.register("pgd")
class PGD(_Adversarial):
    """Projected gradient descent, K steps (Madry et al. 2018, "Towards Deep Learning Models Resistant
    to Adversarial Attacks"), in embedding space as in Zhu et al. 2020.

    ``delta`` starts at 0; each of K ascent steps moves it by ``step_size`` along the normalised
    gradient and projects onto the epsilon ball. The first ascent step reuses the clean pass's
    gradient; the K-1 others take only the gradient with respect to ``delta`` (no weight gradients).
    ``loss = CE(x) + alpha * CE(x + delta_K)``. Costs K + 1 forward and 2 full + K-1 partial backward passes.
    """

    name = "pgd"

    def step(self, model, batch, accelerator):
        if self.alpha == 0:
            return self._erm(model, batch, accelerator)
        mask, labels = batch["attention_mask"], batch["labels"]
        clean, grad = self._clean(model, batch, accelerator)
        delta = project(self.adv.step_size * normalize(grad, mask), self.adv.epsilon, mask)
        for _ in range(self.adv.steps - 1):
            delta.requires_grad_(True)
            with self.accumulate(accelerator, model, last=False):
                loss = self.task_loss(model(**self.inputs(batch), delta=delta).logits, labels)
                (grad,) = torch.autograd.grad(loss, delta)
            delta = project(delta.detach() + self.adv.step_size * normalize(grad, mask), self.adv.epsilon, mask)
        adv = self.task_loss(model(**self.inputs(batch), delta=delta).logits, labels)
        accelerator.backward(self.alpha * adv)
        return self._stats(clean.item(), adv.item(), delta, mask)


@OBJECTIVES.register("freelb")
class FreeLB(_Adversarial):
    """FreeLB, K steps (Zhu et al. 2020, "FreeLB: Enhanced Adversarial Training for Natural Language
    Understanding"): weight gradients are accumulated over all K ascent steps ("free" large batch).

    ``delta_0`` is random with norm ``init_scale * epsilon``; ``loss = CE(x) + alpha * mean_t CE(x + delta_t)``,
    t = 0..K-1, each ``delta_{t+1} = proj(delta_t + step_size * g_t / ||g_t||)``. Costs K + 1 passes.
    """

    name = "freelb"

    def step(self, model, batch, accelerator):
        if self.alpha == 0:
            return self._erm(model, batch, accelerator)
        mask, labels = batch["attention_mask"], batch["labels"]
        with self.accumulate(accelerator, model, last=False):
            out = model(**self.inputs(batch))
            clean = self.task_loss(out.logits, labels)
            accelerator.backward(clean)
        shape = (*batch["input_ids"].shape, out.features.shape[-1])  # (B, T, D)
        delta = self.adv.init_scale * self.adv.epsilon * normalize(torch.randn(shape, device=clean.device), mask)
        total, steps = 0.0, self.adv.steps
        for t in range(steps):
            delta.requires_grad_(True)
            with self.accumulate(accelerator, model, last=t == steps - 1):
                adv = self.task_loss(model(**self.inputs(batch), delta=delta).logits, labels)
                accelerator.backward(self.alpha * adv / steps)
            total += adv.item() / steps
            if t < steps - 1:
                delta = project(
                    delta.detach() + self.adv.step_size * normalize(delta.grad, mask), self.adv.epsilon, mask
                )
        return self._stats(clean.item(), total, delta.detach(), mask)
