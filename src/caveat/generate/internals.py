"""What the model computed inside the one greedy generation: hidden states and attention to the previous token.

Single-pass estimators (learned probes, Mahalanobis density, RAUQ) read the model's internals instead of K
samples. :class:`~caveat.generate.sampling.Sampler` asks ``generate`` for them in the same call that produces
the answers (``output_hidden_states`` / ``output_attentions``), so no second forward pass runs, and keeps only
the greedy row's share in ``Generation.extra``:

- ``"hidden_states"``: (T, L + 1, D) float32. Row 0 is the last prompt token (the state that predicts the
  first answer token); row ``i`` >= 1 is answer token ``y_i`` (1-indexed). Index 0 of the second axis is the
  embedding layer, index ``l`` the output of block ``l``.
- ``"prev_attention"``: (T, L, H) float32, the attention weight from the same tokens to the token just before
  them, per layer and head (so row ``i`` >= 1 is the attention of ``y_i`` to ``y_{i-1}``, row 1 that of
  ``y_1`` to the last prompt token).

``T`` is the number of answer tokens. The last answer token ``y_T`` was never fed back into the model (the
call stops once it is chosen), so its own hidden state and attention do not exist: rows go up to ``y_{T-1}``.
Attention weights need the eager attention implementation (fused kernels do not return them); the model
is switched to it for the call and back after (:func:`eager_attention`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np

from caveat.errors import ConfigError

INTERNALS = ("hidden_states", "attentions")
POSITIONS = ("prompt_last", "answer_mean")


def internals_of(needs: Iterable[str]) -> frozenset[str]:
    """The model internals among what estimators need."""
    return frozenset(n for n in needs if n in INTERNALS)


def has_internals(extra: dict, internals: frozenset[str]) -> bool:
    """Whether a generation's ``extra`` already holds ``internals``."""
    keys = {"hidden_states": "hidden_states", "attentions": "prev_attention"}
    return all(keys[n] in extra for n in internals)


@contextmanager
def eager_attention(model, on: bool = True):
    """Run ``model`` with eager attention (which returns attention weights) inside the block."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = on and before not in (None, "eager")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def greedy_internals(out, internals: frozenset[str], n_tokens: int, row: int = 0) -> dict[str, np.ndarray]:
    """Row ``row``'s internals from a ``generate`` output (``return_dict_in_generate=True``).

    ``out.hidden_states`` is per step a tuple over L + 1 layers of (rows, q, D); ``out.attentions`` per step a
    tuple over L layers of (rows, H, q, kv). The query of interest is the last one of each step (q is 1 when
    the prompt's cache was filled beforehand, the whole prompt otherwise).
    """
    import torch

    extra: dict[str, np.ndarray] = {}
    steps = max(n_tokens, 1)
    if "hidden_states" in internals:
        per_step = [torch.stack([h[row, -1] for h in step]) for step in out.hidden_states[:steps]]  # (L+1, D) each
        extra["hidden_states"] = torch.stack(per_step).float().numpy()  # (T, L + 1, D)
    if "attentions" in internals:
        per_step = []
        for step in out.attentions[:steps]:
            kv = step[0].shape[-1]
            # attention of the newest token (key index kv - 1) to the one before it (kv - 2)
            prev = [a[row, :, -1, kv - 2] if kv >= 2 else torch.zeros(a.shape[1]) for a in step]  # (H,) per layer
            per_step.append(torch.stack(prev))  # (L, H)
        extra["prev_attention"] = torch.stack(per_step).float().numpy()  # (T, L, H)
    return extra


def _all_layers(extra: dict, position: str) -> np.ndarray:
    if "hidden_states" not in extra:
        raise ConfigError("this generation has no hidden states; generate with internals={'hidden_states'}")
    h = extra["hidden_states"]  # (T, L + 1, D)
    if position == "prompt_last":
        return h[0]
    if position == "answer_mean":
        return h[1:].mean(0) if len(h) > 1 else h[0]
    raise ConfigError(f"position must be one of {POSITIONS}; got {position!r}")


def hidden_features(extra: dict, layer: int, position: str) -> np.ndarray:
    """(D,) features of one generation: the hidden state of ``layer`` at ``position``.

    ``"prompt_last"``: the last prompt token (what the model knew before answering; Kossen et al. 2024's
    "token before generation"). ``"answer_mean"``: the mean over the answer tokens whose states exist
    (``y_1 .. y_{T-1}``); the last prompt token's when the answer is a single token.
    """
    h = _all_layers(extra, position)  # (L + 1, D)
    if not 0 <= layer < len(h):
        raise ConfigError(f"layer {layer} does not exist: the model has hidden states 0..{len(h) - 1}")
    return h[layer]


def feature_stack(extras: Iterable[dict], position: str) -> np.ndarray:
    """(N, L + 1, D) features of N generations at ``position``, every layer."""
    return np.stack([_all_layers(e, position) for e in extras])
