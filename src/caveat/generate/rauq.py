"""RAUQ: recurrent attention-based uncertainty from the one greedy generation (Vazhentsev et al. 2025).

Vazhentsev, Rvanova, Kuzmin, Fadeeva, Lazichny, Panchenko, Panov, Baldwin, Sachan, Nakov & Shelmanov (2025),
"Uncertainty-Aware Attention Heads: Efficient Unsupervised Uncertainty Quantification for LLMs". Their
observation: in some heads, the attention a generated token pays to the token just before it drops when the
model starts to go wrong. What is implemented here, for an answer ``y_1 .. y_N``:

1. per layer ``l``, the head ``h_l = argmax_h mean_{i=2..N} a^{l,h}_i``, where ``a^{l,h}_i`` is the attention
   weight from ``y_i`` to ``y_{i-1}`` (the head that attends most to the previous token on this answer; chosen
   per answer, no training);
2. a confidence that carries along the answer::

       c_l(y_1) = p(y_1)
       c_l(y_i) = alpha * p(y_i) + (1 - alpha) * a^{l,h_l}_i * c_l(y_{i-1})      for i >= 2

   with ``p(y_i)`` the probability the model gave the chosen token;
3. per layer, ``u_l = -(1/N) sum_i log c_l(y_i)``; the score is ``max_{l in layers} u_l``.

``alpha`` defaults to 0.2 and ``layers`` to the middle third of the model's layers (the paper tunes both; these
defaults are ours, not a value read from it). ``N`` is the answer length minus one: the last token, usually
the stop token, is never fed back into the model, so its attention does not exist in the greedy pass (see
:mod:`caveat.generate.internals`); a one-token answer keeps ``N = 1`` (``c = p(y_1)``). Needs no second forward
pass: the attentions come from the generate call itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from caveat.errors import ConfigError

ALPHA = 0.2


def middle_layers(n_layers: int) -> list[int]:
    """The middle third of ``n_layers`` layers (at least one)."""
    lo, hi = n_layers // 3, max(n_layers // 3 + 1, (2 * n_layers) // 3)
    return list(range(lo, min(hi, n_layers)))


def rauq_per_layer(logprobs: np.ndarray, prev_attention: np.ndarray, *, alpha: float = ALPHA) -> np.ndarray:
    """Per-layer RAUQ uncertainty ``u_l``.

    Parameters
    ----------
    logprobs : (T,) log-probability of each answer token ``y_1 .. y_T``.
    prev_attention : (T, L, H); row ``i`` >= 1 the attention of ``y_i`` to ``y_{i-1}`` (rows 0 and 1 unused).
    alpha : weight of the token probability in the recurrence, in (0, 1].

    Returns
    -------
    (L,) ``-(1/N) sum_i log c_l(y_i)`` with ``N = max(T - 1, 1)``.
    """
    if not 0 < alpha <= 1:
        raise ConfigError(f"RAUQ alpha must lie in (0, 1]; got {alpha}. The default is {ALPHA}")
    p = np.exp(np.asarray(logprobs, dtype=np.float64))  # (T,)
    a = np.asarray(prev_attention, dtype=np.float64)  # (T, L, H)
    if len(p) == 0:
        return np.zeros(a.shape[1])
    n = max(len(p) - 1, 1)
    if n >= 2 and a.shape[0] < n + 1:
        raise ConfigError(f"prev_attention has {a.shape[0]} rows for {len(p)} tokens; it needs T rows")
    tail = a[2 : n + 1]  # (N - 1, L, H): attention of y_2 .. y_N to their previous token
    heads = tail.mean(0).argmax(-1) if len(tail) else np.zeros(a.shape[1], dtype=int)  # (L,)
    chosen = np.take_along_axis(tail, heads[None, :, None], axis=2)[..., 0]  # (N - 1, L)
    c = np.full(a.shape[1], p[0])  # (L,): c_l(y_1) = p(y_1)
    log_c = [np.log(np.maximum(c, 1e-300))]
    for i in range(2, n + 1):  # y_i is p[i - 1] and chosen[i - 2]
        c = alpha * p[i - 1] + (1 - alpha) * chosen[i - 2] * c
        log_c.append(np.log(np.maximum(c, 1e-300)))
    return -np.mean(log_c, axis=0)  # (L,)


def rauq(
    logprobs: np.ndarray, prev_attention: np.ndarray, *, alpha: float = ALPHA, layers: Sequence[int] | None = None
) -> float:
    """RAUQ score of one answer: the max over ``layers`` (default :func:`middle_layers`) of :func:`rauq_per_layer`."""
    u = rauq_per_layer(logprobs, prev_attention, alpha=alpha)
    chosen = middle_layers(len(u)) if layers is None else list(layers)
    if not chosen or any(not 0 <= lay < len(u) for lay in chosen):
        raise ConfigError(f"RAUQ layers must be among 0..{len(u) - 1}; got {chosen}")
    return float(u[chosen].max())
