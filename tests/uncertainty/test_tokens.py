"""Span confidence from word probabilities, and span-level calibration figures."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.uncertainty.tokens import binary_ece, span_confidences, span_report

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def probs_for(tags: list[str], p: list[float]) -> np.ndarray:
    """(W, C) with probability p[w] on tag w and the rest spread evenly."""
    out = np.zeros((len(tags), len(LABELS)))
    for w, (t, q) in enumerate(zip(tags, p)):
        out[w] = (1 - q) / (len(LABELS) - 1)
        out[w, LABELS.index(t)] = q
    return out


def test_product_min_mean_of_the_span_words():
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    spans = span_confidences(probs_for(tags, [0.9, 0.6, 0.99, 0.8]), tags, LABELS)
    (s0, e0, t0, c0), (s1, e1, t1, c1) = spans
    assert (s0, e0, t0) == (0, 2, "PER") and (s1, e1, t1) == (3, 4, "LOC")
    assert c0 == pytest.approx({"product": 0.54, "min": 0.6, "mean": 0.75})
    assert c1 == pytest.approx({"product": 0.8, "min": 0.8, "mean": 0.8})


def test_binary_ece_hand_computed():
    # bin (0.8, 0.867]: conf 0.85, 0.85 -> acc 1/2: |0.5 - 0.85| = 0.35 over 2/4;
    # bin (0.2, 0.267]: conf 0.25 acc 0 -> 0.25 over 1/4;
    # bin (0.933, 1]: conf 1.0 acc 1 -> 0
    assert binary_ece(np.array([0.85, 0.85, 0.25, 1.0]), np.array([1, 0, 0, 1])) == pytest.approx(
        0.5 * 0.35 + 0.25 * 0.25
    )


def test_span_report_ranks_planted_wrong_spans_last():
    rng = np.random.default_rng(0)
    word_probs, pred, gold = [], [], []
    for i in range(200):
        wrong = i % 4 == 0  # a quarter of the spans are wrong, and planted with low confidence
        tags = ["O", "B-PER", "I-PER", "O"]
        p = [0.99, rng.uniform(0.3, 0.6) if wrong else rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0), 0.99]
        word_probs.append(probs_for(tags, p))
        pred.append(tags)
        gold.append(["O", "B-LOC", "I-LOC", "O"] if wrong else tags)
    report = span_report(word_probs, pred, gold, LABELS)
    assert report["n_spans"] == 200 and report["precision"] == pytest.approx(0.75)
    for how in ("product", "min", "mean"):
        assert report[how]["auroc"] == pytest.approx(1.0)
        assert report[how]["precision_at_50"] == 1.0
