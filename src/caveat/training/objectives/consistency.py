"""Consistency between clean and perturbed views, TRADES-style (Zhang et al. 2019, "Theoretically Principled
Trade-off between Robustness and Accuracy", ICML 2019).

The perturbed view of an example is a discrete edit from ``train.augment`` (lexicon synonyms, embedding
neighbours, character noise or a mixture of them), paired with its clean row rather than added as a row of its
own. The batch carries it as ``perturbed_input_ids`` / ``perturbed_attention_mask`` (B, T), padded to the clean
rows' width, and ``perturbed`` (B,) bool: whether the row has a view this epoch (a row without one repeats its
clean ids, which are never read).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caveat.training.objectives.base import OBJECTIVES, Objective


def consistency_kl(clean_logits: torch.Tensor, view_logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``KL(p_clean || p_view) = sum_c p_clean (log p_clean - log p_view)``.

    clean_logits, view_logits : (K, C); ``view_logits[k]`` is the perturbed view of ``clean_logits[k]``.
    Neither side is detached: the gradient reaches both (as in TRADES).
    """
    log_p = F.log_softmax(clean_logits, dim=-1)  # (K, C)
    log_q = F.log_softmax(view_logits, dim=-1)  # (K, C)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


@OBJECTIVES.register("consistency")
class Consistency(Objective):
    """``loss = CE(f(x), y) + alpha * mean_k KL(p(x_k) || p(x'_k))`` over the rows k that have a perturbed view x'.

    TRADES (Zhang et al. 2019) writes the same loss with ``beta`` for ``alpha``; it bounds the robust error by
    the natural error plus a boundary term, and the KL between clean and perturbed predictions is that
    term's surrogate. Two differences: TRADES finds ``x'`` by maximising the KL inside an L-infinity ball
    each step, here ``x'`` is the discrete edit ``train.augment`` made at the start of the epoch (the current
    model's successful attack in ``mode=attack``, A2T-style; a random edit under the same constraints in
    ``mode=random``); and the KL is averaged over the rows that have a view, so ``alpha`` keeps its meaning
    whatever ``train.augment.fraction`` is (TRADES perturbs every example: ``fraction=1.0``).

    Design choices:

    - ``p_clean`` is **not detached**, as in TRADES (its reference code back-propagates through both
      ``model(x_natural)`` and ``model(x_adv)``). The KL is the boundary term: a clean prediction that a
      synonym swap flips is itself close to the boundary, and moving it (less confident where a meaning-
      preserving edit disagrees) is the trade-off the paper argues for; it is also what a calibrated model
      should do there. The CE term keeps the clean prediction on its label. Detaching it (a fixed target, as
      in VAT, Miyato et al. 2018, or UDA, Xie et al. 2020) would pull only the perturbed view.
    - Clean rows and views run as **one forward** over the batch stacked with its views, (B + K, T); the
      collator pads both to one width. In train mode dropout differs between the two passes, so the KL also
      holds R-Drop's dropout term (Liang et al. 2021) on the rows with a view.
    - Epochs before ``train.augment.start_epoch``, and batches whose rows have no view, train plain ERM
      (``reg`` 0, ``views`` 0); so does ``alpha = 0``, as for every objective.
    - Text classification only: ``train.augment`` makes no token-level edits (tags would have to follow
      the words), so a token-classification run is refused.

    Logged: ``task_loss`` = CE on the clean rows, ``reg`` = the mean KL, ``views`` = K.
    """

    name = "consistency"
    supports_tokens = False
    needs_views = True

    def step(self, model, batch, accelerator):
        labels = batch["labels"]
        has = batch.get("perturbed")  # (B,) bool, absent when no row has a view
        if self.alpha == 0 or has is None or not bool(has.any()):
            out = model(**self.inputs(batch))
            loss = self.task_loss(out.logits, labels)
            accelerator.backward(loss)
            return {"loss": loss.item(), "task_loss": loss.item(), "reg": 0.0, "views": 0}
        clean = self.inputs(batch)
        stacked = {k: torch.cat([v, batch[f"perturbed_{k}"][has]]) for k, v in clean.items()}  # (B + K, T)
        logits = model(**stacked).logits  # (B + K, C)
        clean_logits, view_logits = logits[: labels.shape[0]], logits[labels.shape[0] :]  # (B, C), (K, C)
        task = self.task_loss(clean_logits, labels)
        reg = consistency_kl(clean_logits[has], view_logits)
        loss = task + self.alpha * reg
        accelerator.backward(loss)
        return {"loss": loss.item(), "task_loss": task.item(), "reg": reg.item(), "views": int(has.sum())}
