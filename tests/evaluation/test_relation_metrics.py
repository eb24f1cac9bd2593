"""The official SemEval-2010 Task 8 score against a hand-computed case with direction errors."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.evaluation.metrics import metrics_for, relation_decisions, relation_metrics, relation_type
from caveat.types import Split, Task, TextExample

LABELS = ["A(e1,e2)", "A(e2,e1)", "B(e1,e2)", "B(e2,e1)", "Other"]
GOLD = [0, 0, 1, 2, 2, 4, 4]
PRED = [0, 1, 1, 2, 4, 2, 4]  # one A direction error, one B missed as Other, one Other predicted as B


def test_hand_computed_case_with_direction_errors():
    out = relation_metrics(GOLD, PRED, LABELS)
    # A: correct 2 (exact), predicted as A (either direction) 3, gold A 3 -> P = R = F1 = 2/3; 1 direction error
    assert out["per_relation"]["A"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3, "wrong_direction": 1}
    )
    # B: correct 1, predicted as B 2 (one gold Other), gold B 2 -> P = R = F1 = 1/2
    assert out["per_relation"]["B"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "wrong_direction": 0}
    )
    assert "Other" not in out["per_relation"]
    assert out["relation_macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_a_direction_error_is_wrong_not_half_right():
    perfect = relation_metrics([0, 2], [0, 2], LABELS)["relation_macro_f1"]
    flipped = relation_metrics([0, 2], [1, 2], LABELS)
    assert perfect == 1.0 and flipped["per_relation"]["A"]["f1"] == 0.0
    assert flipped["relation_macro_f1"] == pytest.approx(0.5)


def test_metrics_for_relations_adds_the_official_score_beside_accuracy():
    split = Split("test", [TextExample("x", LABELS[g]) for g in GOLD], "mem")
    logits = np.eye(len(LABELS))[PRED]
    out = metrics_for(Task.RELATION_CLASSIFICATION, split, LABELS, logits=logits)
    assert out["accuracy"] == pytest.approx(4 / 7)
    assert out["relation_macro_f1"] == pytest.approx(7 / 12)
    assert set(out["per_relation"]) == {"A", "B"}
    assert "relation_macro_f1" not in metrics_for(Task.TEXT_CLASSIFICATION, split, LABELS, logits=logits)


def test_relation_type_drops_the_direction():
    assert relation_type("Cause-Effect(e2,e1)") == "Cause-Effect" and relation_type("Other") == "Other"


def test_relation_decisions_split_no_relation_from_errors_between_relations():
    labels = ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Member-Collection(e1,e2)", "Other"]
    #          gold  pred  answered
    cases = [
        (0, 0, True),  # right
        (0, 1, True),  # between relations, wrong direction
        (0, 2, True),  # between relations, another relation
        (3, 0, True),  # "Other" taken for a relation
        (2, 3, False),  # a relation taken for "Other", withheld
        (3, 3, False),  # "no relation", right, withheld
        (3, 3, True),  # "no relation", right, answered
    ]
    y, p, answered = (list(c) for c in zip(*cases))
    out = relation_decisions(y, p, answered, labels)
    assert out["n"] == 7 and out["withheld_no_relation"] == 1 and out["withheld_relation"] == 1
    assert out["withheld_would_be_wrong"] == 1
    assert out["answered_errors_other_vs_relation"] == 1 and out["answered_errors_between_relations"] == 2
    assert out["answered_errors_wrong_direction"] == 1
    assert out["answered_error_no_relation"] == 0.5 and out["answered_error_relation"] == 2 / 3
    assert relation_decisions([3], [3], [False], labels)["answered_error_no_relation"] is None
