"""Token -> span confidence for NER, and how well it separates right from wrong spans.

A predicted span's confidence aggregates the probabilities its words' predicted tags got: the
``product`` (the chance that every tag is right, if words were independent), the ``min`` (the
weakest word), or the ``mean``. Which one ranks wrong spans best is an empirical question:
``span_report`` measures all three side by side.
"""

from __future__ import annotations

import numpy as np

from caveat.evaluation.calibration import aurc, error_detection_auroc
from caveat.models.tags import bio_spans

AGGREGATIONS = {"product": np.prod, "min": np.min, "mean": np.mean}


def span_confidences(
    word_probs: np.ndarray, tags: list[str], labels: list[str]
) -> list[tuple[int, int, str, dict[str, float]]]:
    """Spans of one sentence with their confidences.

    word_probs : (W, C) per-word tag probabilities; tags : W predicted BIO2 tags.
    Returns ``(start, end, type, {aggregation: confidence})`` per predicted span.
    """
    index = {lab: i for i, lab in enumerate(labels)}
    p = np.array([word_probs[w, index[t]] for w, t in enumerate(tags)])  # (W,) prob of the chosen tag
    return [(s, e, typ, {k: float(f(p[s:e])) for k, f in AGGREGATIONS.items()}) for s, e, typ in bio_spans(tags)]


def binary_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE of a binary confidence (equal-width bins): ``sum_b |B_b|/N * |mean(correct) - mean(conf)|``."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


def span_report(
    word_probs: list[np.ndarray], pred_tags: list[list[str]], gold_tags: list[list[str]], labels: list[str]
) -> dict:
    """Per aggregation: span-level ECE, AUROC of (1 - confidence) for detecting wrong spans, AURC, and
    the precision of the spans kept at 50/80/90% coverage (dropping the least confident)."""

    conf: dict[str, list[float]] = {k: [] for k in AGGREGATIONS}
    correct = []
    for probs, pred, gold in zip(word_probs, pred_tags, gold_tags):
        truth = set(bio_spans(list(gold)))
        for s, e, typ, c in span_confidences(probs, pred, labels):
            correct.append((s, e, typ) in truth)
            for k, v in c.items():
                conf[k].append(v)
    correct_arr = np.array(correct, dtype=bool)
    out = {"n_spans": int(len(correct_arr)), "precision": float(correct_arr.mean()) if len(correct_arr) else None}
    for k, values in conf.items():
        c = np.array(values)
        if len(c) == 0:
            continue
        order = np.argsort(-c, kind="stable")
        out[k] = {
            "ece": binary_ece(c, correct_arr),
            "auroc": error_detection_auroc(1 - c, ~correct_arr) if 0 < correct_arr.sum() < len(c) else None,
            "aurc": aurc(1 - c, ~correct_arr),
            **{
                f"precision_at_{int(q * 100)}": float(correct_arr[order[: max(1, int(round(q * len(c))))]].mean())
                for q in (0.5, 0.8, 0.9)
            },
        }
    return out
