"""Constrained Viterbi finds the best valid BIO2 sequence; bio_spans reads entities off tags."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from caveat.models.tags import bio_spans, viterbi_bio

# Two label orders: as written, and sorted (as a label map builds them), so that no test
# depends on O being class 0.
LABEL_SETS = [
    ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"],
]


def valid(tags: list[str]) -> bool:
    """BIO2 validity, written independently of caveat's transition mask."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def brute_force(log_probs: np.ndarray, labels: list[str]) -> tuple[float, tuple[int, ...]]:
    """Score and ids of the best valid sequence, by trying every sequence."""
    best = (-np.inf, ())
    for ids in itertools.product(range(len(labels)), repeat=len(log_probs)):
        if valid([labels[i] for i in ids]):
            score = float(log_probs[np.arange(len(ids)), ids].sum())
            best = max(best, (score, ids))
    return best


@pytest.mark.parametrize("labels", LABEL_SETS)
def test_viterbi_finds_best_valid_sequence(labels):
    invalid_argmax = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        length = 1 + seed % 5
        # log-softmax of random logits; the spread makes invalid argmax paths common
        logits = rng.normal(scale=2.0, size=(length, len(labels)))
        log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        path = viterbi_bio(log_probs, labels)
        assert len(path) == length
        assert valid([labels[i] for i in path]), (seed, [labels[i] for i in path])
        best_score, best_ids = brute_force(log_probs, labels)
        assert tuple(path) == best_ids, seed
        assert log_probs[np.arange(length), path].sum() == pytest.approx(best_score)
        invalid_argmax += not valid([labels[i] for i in log_probs.argmax(1)])
    assert invalid_argmax >= 20  # the constraint was actually exercised


def test_viterbi_repairs_o_then_inside_into_begin_then_inside():
    labels = ["O", "B-PER", "I-PER"]
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # argmax O, second choice B-PER
            [0.1, 0.1, 0.8],
        ]
    )  # argmax I-PER
    assert [labels[i] for i in probs.argmax(1)] == ["O", "I-PER"]
    assert [labels[i] for i in viterbi_bio(np.log(probs), labels)] == ["B-PER", "I-PER"]


def test_viterbi_never_starts_with_inside():
    labels = ["O", "B-PER", "I-PER"]
    path = viterbi_bio(np.log(np.array([[0.05, 0.15, 0.8]])), labels)
    assert [labels[i] for i in path] == ["B-PER"]


def test_viterbi_does_not_continue_another_type():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    probs = np.array([[0.05, 0.7, 0.05, 0.15, 0.05], [0.05, 0.05, 0.05, 0.05, 0.8]])  # argmax B-PER I-LOC
    tags = [labels[i] for i in viterbi_bio(np.log(probs), labels)]
    assert tags == ["B-LOC", "I-LOC"]  # 0.15 * 0.8 beats B-PER then O / B-LOC (0.7 * 0.05)


def test_viterbi_of_empty_sentence_is_empty():
    assert viterbi_bio(np.zeros((0, 3)), ["O", "B-PER", "I-PER"]) == []


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER"], [(0, 1, "PER")]),
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),
        (["O", "B-LOC", "I-LOC", "I-LOC"], [(1, 4, "LOC")]),
        (["B-PER", "B-LOC", "I-LOC", "B-PER"], [(0, 1, "PER"), (1, 3, "LOC"), (3, 4, "PER")]),
    ],
)
def test_bio_spans(tags, spans):
    assert bio_spans(tags) == spans
