"""BIO2 tag decoding: constrained Viterbi over word tag probabilities, and tags -> spans."""

from __future__ import annotations

import numpy as np


def transition_mask(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(allowed (C, C), start_allowed (C,))``: ``I-X`` may only follow ``B-X`` or ``I-X``."""
    kinds = [(lab[:2], lab[2:]) if lab[:2] in ("B-", "I-") else ("O", "") for lab in labels]
    start = np.array([k != "I-" for k, _ in kinds])
    allowed = np.ones((len(labels), len(labels)), dtype=bool)
    for j, (kind, typ) in enumerate(kinds):
        if kind == "I-":
            allowed[:, j] = [ki in ("B-", "I-") and ti == typ for ki, ti in kinds]
    return allowed, start


def viterbi_bio(log_probs: np.ndarray, labels: list[str]) -> list[int]:
    """Most probable valid BIO2 sequence.

    log_probs : (W, C) per-word log-probabilities. Returns W tag ids. Argmax decoding can emit an
    ``I-X`` after ``O``, which strict span scoring counts as no entity; the constraint repairs that
    using the model's own second choices.
    """
    allowed, start = transition_mask(labels)
    penalty = np.where(allowed, 0.0, -np.inf)  # (C_prev, C_next)
    n, c = log_probs.shape
    if n == 0:
        return []
    score = np.where(start, log_probs[0], -np.inf)  # (C,)
    back = np.zeros((n, c), dtype=np.int64)
    for t in range(1, n):
        total = score[:, None] + penalty  # (C_prev, C_next)
        back[t] = total.argmax(0)
        score = total.max(0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def bio_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end_exclusive, type)`` for each entity of a valid BIO2 sequence."""
    spans, begin, typ = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if begin is not None and not (tag.startswith("I-") and tag[2:] == typ):
            spans.append((begin, i, typ))
            begin = None
        if tag.startswith("B-") or (tag.startswith("I-") and begin is None):
            begin, typ = i, tag[2:]
    return spans


def decode_tags(word_logits: list[np.ndarray], labels: list[str]) -> list[list[str]]:
    """Per sentence (W, C) logits -> valid BIO2 tag strings by constrained Viterbi."""
    out = []
    for logits in word_logits:
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True) if len(logits) else logits
        out.append([labels[i] for i in viterbi_bio(log_probs, labels)])
    return out
