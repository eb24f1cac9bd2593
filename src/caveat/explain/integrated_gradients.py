"""Integrated gradients over the input embeddings, summed per sub-token and then per word.

Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML. The attribution
of embedding coordinate ``i`` is ``(x_i - b_i) * ∫_0^1 ∂f(b + a (x - b)) / ∂x_i da``; by
*completeness* the attributions sum to ``f(x) - f(b)``. Here ``f`` is the target label's logit,
``x`` the word embeddings of the text and ``b`` those of a baseline where every non-special
sub-token is ``[PAD]`` (``[CLS]``/``[SEP]`` stay, so they get exactly zero). The integral is
approximated by Captum's ``LayerIntegratedGradients`` (Gauss-Legendre, ``steps`` points); its
convergence delta ``sum(attributions) - (f(x) - f(b))`` says how good the approximation is.

Text classification only so far.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import numpy as np
import torch

from caveat.errors import ConfigError
from caveat.types import Task


@dataclass
class Attribution:
    """The explanation of one text.

    Attributes
    ----------
    words : W whitespace-separated words of the text.
    word_attributions : (W,) sum of the attributions of each word's sub-tokens (0 for words cut off
        by ``max_length``); positive = pushed towards ``target``.
    tokens : T sub-tokens the model saw, special tokens included.
    token_attributions : (T,) attribution of each sub-token, summed over the embedding dimension.
    token_words : T indices into ``words`` (None for special tokens).
    target : the explained class index.
    predicted : the class the model predicts for the text.
    output, baseline_output : ``f(x)`` and ``f(b)``, the target logit at the text and at the baseline.
    delta : convergence delta, ``token_attributions.sum() - (output - baseline_output)``.
    steps : integration points.
    """

    words: list[str]
    word_attributions: np.ndarray
    tokens: list[str]
    token_attributions: np.ndarray
    token_words: list[int | None]
    target: int
    predicted: int
    output: float
    baseline_output: float
    delta: float
    steps: int


def _word_of_tokens(text: str, offsets: list[tuple[int, int]], special: list[int]) -> tuple[list[str], list[int | None]]:
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


def integrated_gradients(model, tokenizer, text: str, *, target: int | None = None, steps: int = 50,
                         max_length: int = 128, internal_batch_size: int | None = None) -> Attribution:
    """Explain ``model``'s logit for ``target`` (default: the predicted class) on one ``text``.

    Parameters
    ----------
    model : a text-classification ``CaveatModel`` (put in eval mode here; no dropout).
    tokenizer : its fast tokenizer (offsets map sub-tokens back to words).
    text : the input, tokenised exactly as ``Predictor`` does (truncated to ``max_length``).
    target : class index to explain; None explains the predicted class.
    steps : integration points (more = smaller convergence delta, proportionally slower).
    internal_batch_size : interpolation points per forward pass (default: all ``steps`` at once).
    """
    from captum.attr import LayerIntegratedGradients

    if getattr(model, "task", Task.TEXT_CLASSIFICATION) is not Task.TEXT_CLASSIFICATION:
        raise ConfigError("integrated gradients explains text-classification runs so far; this model tags tokens")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"text to explain must be a non-empty string; got {text!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"steps must be an integer >= 2 (50 is a good default). Got {steps!r}.")
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    ids = torch.tensor([enc["input_ids"]])  # (1, T)
    mask = torch.ones_like(ids)  # (1, T)
    special = torch.tensor([enc["special_tokens_mask"]], dtype=torch.bool)  # (1, T)
    baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id or 0))  # (1, T)

    was_training = model.training
    model.eval()
    try:
        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, C)

        with torch.no_grad():
            both = forward(torch.cat([ids, baseline]), torch.cat([mask, mask]))  # (2, C)
        n_labels, predicted = both.shape[-1], int(both[0].argmax())
        if target is None:
            target = predicted
        elif isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_labels:
            raise ConfigError(f"target must be a class index in 0..{n_labels - 1}; got {target!r}")
        lig = LayerIntegratedGradients(forward, model.encoder.get_input_embeddings())
        with torch.enable_grad():
            attr, delta = lig.attribute(ids, baselines=baseline, target=target, additional_forward_args=(mask,),
                                        n_steps=steps, internal_batch_size=internal_batch_size or steps,
                                        return_convergence_delta=True)
    finally:
        model.train(was_training)
    per_token = attr.sum(-1)[0].detach().double().numpy()  # (1, T, D) -> (T,)
    words, owner = _word_of_tokens(text, enc["offset_mapping"], enc["special_tokens_mask"])
    per_word = np.zeros(len(words))
    for t, w in enumerate(owner):
        if w is not None:
            per_word[w] += per_token[t]
    return Attribution(words=words, word_attributions=per_word, tokens=tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                       token_attributions=per_token, token_words=owner, target=target, predicted=predicted,
                       output=float(both[0, target]), baseline_output=float(both[1, target]),
                       delta=float(delta.reshape(-1)[0]), steps=steps)
