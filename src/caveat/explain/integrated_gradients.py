"""Integrated gradients over the input embeddings, summed per sub-token and then per word.

Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML. The attribution
of embedding coordinate ``i`` is ``(x_i - b_i) * ∫_0^1 ∂f(b + a (x - b)) / ∂x_i da``; by
*completeness* the attributions sum to ``f(x) - f(b)``. Here ``f`` is the explained quantity (see
``targets.py``), ``x`` the word embeddings of the input and ``b`` those of a baseline where every
sub-token of a feature word is ``[PAD]``; special tokens and a span's own words keep their
embeddings, so they get exactly zero. The integral is approximated by Captum's
``LayerIntegratedGradients`` (Gauss-Legendre, ``steps`` points, all in one batched pass by
default); its convergence delta ``sum(attributions) - (f(x) - f(b))`` says how good the
approximation is.

Uncertainty: the ``[PAD]`` baseline carries no evidence, and the entropy of a prediction peaks where
there is no evidence, so along the path from it almost any word, for whichever label, lowers the
entropy: IG of the entropy gives nearly every word a negative share, whatever the word says. So for
``target='uncertainty'`` IG explains the least confidence ``1 - p(ĉ)``, ``ĉ`` the label predicted for
the whole input (the ``least_confidence`` score a calibrated run abstains on by default). It is monotone
in the evidence: words for ``ĉ`` lower it (negative), words for a rival label raise it (positive), so the
signs say which words make the model unsure and they are mixed wherever the input holds evidence both
ways. Completeness is unchanged: the attributions sum to ``f(x) - f(b)``. ``target='entropy'`` still
explains the entropy.
"""

from __future__ import annotations

import bisect
import re
import time

import numpy as np
import torch

from caveat.errors import ConfigError
from caveat.explain.base import EXPLAINERS, Attribution
from caveat.explain.targets import Explained
from caveat.types import Task


def _word_of_tokens(
    text: str, offsets: list[tuple[int, int]], special: list[int]
) -> tuple[list[str], list[int | None]]:
    """Whitespace words of ``text`` and, per sub-token, the word its first character falls in."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts = [s for s, _ in spans]
    owner: list[int | None] = []
    for (s, e), is_special in zip(offsets, special):
        if is_special or e <= s:
            owner.append(None)
            continue
        w = bisect.bisect_right(starts, s) - 1
        owner.append(w if w >= 0 and s < spans[w][1] else None)
    return [text[s:e] for s, e in spans], owner


def _encode(explained: Explained, tokenizer, max_length: int) -> tuple[list[int], list[int | None]]:
    """Sub-token ids of the input and the word each belongs to (None: special tokens)."""
    if explained.task is Task.TOKEN_CLASSIFICATION:
        enc = tokenizer(list(explained.words), is_split_into_words=True, truncation=True, max_length=max_length)
        return enc["input_ids"], enc.word_ids(0)
    text = " ".join(explained.words)
    enc = tokenizer(
        text, truncation=True, max_length=max_length, return_offsets_mapping=True, return_special_tokens_mask=True
    )
    _, owner = _word_of_tokens(text, enc["offset_mapping"], enc["special_tokens_mask"])
    return enc["input_ids"], owner


UNCERTAINTY = "least_confidence"  # what target='uncertainty' explains here (see the module docstring)


@EXPLAINERS.register("ig")
def integrated_gradients(
    explained: Explained, *, steps: int = 32, internal_batch_size: int | None = None, seed: int = 0
) -> Attribution:
    """Explain ``explained`` with integrated gradients (deterministic; ``seed`` is unused).

    Parameters
    ----------
    explained : the input and quantity (``ExplainModel.explained``).
    steps : integration points (more = smaller convergence delta, proportionally slower).
    internal_batch_size : interpolation points per forward pass (default: all ``steps`` at once).
    """
    from captum.attr import LayerIntegratedGradients

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"steps must be an integer >= 2 (32 is a good default). Got {steps!r}.")
    if explained.samples > 1:
        raise ConfigError(
            "integrated gradients needs a deterministic quantity; the mutual information samples "
            "dropout masks. Explain it with occlusion, shap or lime, or explain the entropy."
        )
    started = time.perf_counter()
    p = explained.predictor
    model, tokenizer = p.model, p.tokenizer
    ids_list, owner = _encode(explained, tokenizer, p.max_length)
    ids = torch.tensor([ids_list])  # (1, T)
    mask = torch.ones_like(ids)  # (1, T)
    variable = torch.tensor([[w is not None and bool(explained.features[w]) for w in owner]])  # (1, T)
    baseline = torch.where(variable, torch.full_like(ids, tokenizer.pad_token_id or 0), ids)  # (1, T)
    positions = None
    if explained.span is not None:  # first sub-token of each span word
        first = {}
        for t, w in enumerate(owner):
            if w is not None and w not in first:
                first[w] = t
        s, e = explained.span
        if any(w not in first for w in range(s, e)):
            raise ConfigError(f"the span's words are cut off by max_length={p.max_length}; explain a shorter sentence")
        positions = torch.tensor([[first[w] for w in range(s, e)]])  # (1, L)

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, C) or (B, T, C)
        if positions is None:
            return explained.transform(logits)
        return explained.transform(logits, positions.expand(len(logits), -1))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            both = forward(torch.cat([ids, baseline]), torch.cat([mask, mask])).double()  # (2,)
        lig = LayerIntegratedGradients(forward, model.encoder.get_input_embeddings())
        with torch.enable_grad():
            attr, delta = lig.attribute(
                ids,
                baselines=baseline,
                additional_forward_args=(mask,),
                n_steps=steps,
                internal_batch_size=internal_batch_size or steps,
                return_convergence_delta=True,
            )
    finally:
        model.train(was_training)
    per_token = attr.sum(-1)[0].detach().double().numpy()  # (1, T, D) -> (T,)
    per_word = np.zeros(len(explained.words))
    for t, w in enumerate(owner):
        if w is not None:
            per_word[w] += per_token[t]
    per_word[~explained.features] = 0.0
    return Attribution(
        method="ig",
        words=list(explained.words),
        word_attributions=per_word,
        features=explained.features.copy(),
        target=explained.target,
        value=float(both[0]),
        evaluations=steps + 2,
        seconds=time.perf_counter() - started,
        details={
            "steps": steps,
            "baseline_value": float(both[1]),
            "delta": float(delta.reshape(-1)[0]),
            "tokens": tokenizer.convert_ids_to_tokens(ids_list),
            "token_words": list(owner),
            "token_attributions": per_token.tolist(),
            "evaluations_note": "forward and backward passes",
        },
    )


integrated_gradients.uncertainty = UNCERTAINTY  # declared for caveat.explain.explain
