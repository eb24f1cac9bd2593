"""Faithfulness metrics (ERASER comprehensiveness/sufficiency, Samek's deletion AOPC) on additive toy
scores where every figure can be worked out by hand. No model needed."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.explain.faithfulness import (
    faithfulness,
    random_baseline,
    rank_agreement,
    ranking,
    summarise,
    top_k_count,
    top_k_drop,
)

W4 = np.array([0.5, 0.1, -0.2, 0.3])


def additive(w: np.ndarray):
    """f(keep) = keep @ w: each kept word adds its weight."""
    return lambda keep: keep.astype(float) @ w


class Counting:
    """Wraps a score, recording each call's masks."""

    def __init__(self, score):
        self.score, self.calls = score, []

    def __call__(self, keep: np.ndarray) -> np.ndarray:
        self.calls.append(keep.copy())
        return self.score(keep)


def test_top_k_count_and_ranking():
    assert [top_k_count(4, f) for f in (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)] == [1, 1, 1, 1, 2, 4]
    assert top_k_count(0, 0.5) == 0
    assert top_k_count(3, 0.99) == 3
    assert ranking(np.array([0.1, 0.3, 0.3, -1.0])).tolist() == [1, 2, 0, 3]  # tie: position order


def test_hand_computed_toy():
    # w = [0.5, 0.1, -0.2, 0.3], f(x) = 0.7; ranking by w: words 0, 3, 1, 2.
    out = faithfulness(additive(W4), W4)
    assert out["value"] == pytest.approx(0.7)
    # Bins 1%, 5%, 10%, 20% -> ceil(..*4) = 1 word {0}; 50% -> 2 words {0, 3}.
    # Comprehensiveness: f(x) - f(x \ {0}) = 0.5; f(x) - f(x \ {0, 3}) = 0.5 + 0.3 = 0.8.
    assert out["comprehensiveness_at"] == pytest.approx({"0.01": 0.5, "0.05": 0.5, "0.1": 0.5, "0.2": 0.5, "0.5": 0.8})
    assert out["comprehensiveness"] == pytest.approx((4 * 0.5 + 0.8) / 5)  # 0.56
    # Sufficiency: f(x) - f({0}) = 0.7 - 0.5 = 0.2; f(x) - f({0, 3}) = 0.7 - 0.8 = -0.1.
    assert out["sufficiency_at"] == pytest.approx({"0.01": 0.2, "0.05": 0.2, "0.1": 0.2, "0.2": 0.2, "0.5": -0.1})
    assert out["sufficiency"] == pytest.approx((4 * 0.2 - 0.1) / 5)  # 0.14
    # Deletion, K = min(10, 4) = 4: drops 0, 0.5, 0.8, 0.8 + 0.1 = 0.9, 0.9 - 0.2 = 0.7 -> 2.9 / 5.
    assert out["deletion_aopc"] == pytest.approx(2.9 / 5)  # 0.58
    # Distinct masks: 1111, 0111, 0110, 1000, 1001, 0010, 0000.
    assert out["evaluations"] == 7


@pytest.mark.parametrize("which", ["faithfulness", "random_baseline", "top_k_drop"])
def test_score_called_once_with_distinct_rows(which):
    score = Counting(additive(np.arange(6, dtype=float)))
    if which == "faithfulness":
        out = faithfulness(score, np.array([3.0, 1.0, 2.0, 0.0, 5.0, 4.0]))
    elif which == "random_baseline":
        out = random_baseline(score, 6, draws=4)
    else:
        out = top_k_drop(score, np.arange(6.0), k=2, random_draws=20)
    assert len(score.calls) == 1
    (masks,) = score.calls
    assert masks.dtype == bool and masks.shape[1] == 6
    assert out["evaluations"] == len(masks) == len(np.unique(masks, axis=0))


def test_perfect_attributions_beat_random():
    w = np.random.default_rng(1).normal(size=12)
    score = additive(w)
    good = faithfulness(score, w)
    rand = random_baseline(score, 12, draws=5, seed=0)
    assert good["value"] == pytest.approx(rand["value"]) == pytest.approx(w.sum())
    assert good["comprehensiveness"] > rand["comprehensiveness"]
    assert good["sufficiency"] < rand["sufficiency"]
    assert good["deletion_aopc"] > rand["deletion_aopc"]
    assert set(rand["comprehensiveness_at"]) == {"0.01", "0.05", "0.1", "0.2", "0.5"}


def test_top_k_drop_matches_hand_values():
    w = np.random.default_rng(2).normal(size=12)
    out = top_k_drop(additive(w), w, k=3, random_draws=10, seed=7)
    assert out["top"] == pytest.approx(np.sort(w)[-3:].sum())
    rng = np.random.default_rng(7)
    expected = np.mean([w[rng.choice(12, size=3, replace=False)].sum() for _ in range(10)])
    assert out["random"] == pytest.approx(expected)
    assert out["lower_than_random"] is True and out["k"] == 3
    assert top_k_drop(additive(W4), W4, k=10)["top"] == pytest.approx(0.7)  # k capped at F = 4


def test_rank_agreement():
    a = np.array([0.4, -0.1, 2.0, 0.3, 1.0])
    assert rank_agreement(a, a.copy()) == pytest.approx({"spearman": 1.0, "kendall": 1.0, "top_k_overlap": 1.0})
    reverse = rank_agreement(a, -a)
    assert reverse["spearman"] == pytest.approx(-1.0) and reverse["kendall"] == pytest.approx(-1.0)
    assert reverse["top_k_overlap"] == pytest.approx(1 / 3)  # top-3 {2, 4, 0} vs {1, 3, 0}
    assert rank_agreement(a, np.zeros(5))["kendall"] == 0.0  # constant: undefined -> 0


def test_errors():
    score = additive(W4)
    with pytest.raises(ValueError, match="not finite"):
        faithfulness(score, np.array([0.5, np.nan, 0.1, 0.2]))
    with pytest.raises(ValueError, match=r"fraction 0.0 is outside \(0, 1\]"):
        faithfulness(score, W4, fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="shape"):
        faithfulness(lambda keep: np.zeros((len(keep), 2)), W4)
    with pytest.raises(ValueError, match="F = 0"):
        faithfulness(score, np.array([]))
    with pytest.raises(ValueError, match="1-D"):
        faithfulness(score, W4[None, :])


def test_summarise_two_rows():
    rows = [
        {"comprehensiveness": 0.2, "evaluations": 7, "comprehensiveness_at": {"0.5": 1.0}, "other": {"x": 1}},
        {"comprehensiveness": 0.6, "evaluations": 9, "comprehensiveness_at": {"0.5": 3.0}, "other": {"x": 2}},
    ]
    out = summarise(rows)
    # mean 0.4; std(ddof=1) = sqrt(((0.2-0.4)^2 + (0.6-0.4)^2) / 1) = sqrt(0.08); se = sqrt(0.08 / 2) = 0.2.
    assert out["comprehensiveness"] == pytest.approx({"mean": 0.4, "se": 0.2})
    assert out["evaluations"] == pytest.approx({"mean": 8.0, "se": 1.0})
    assert out["comprehensiveness_at"]["0.5"] == pytest.approx({"mean": 2.0, "se": 1.0})
    assert "other" not in out and out["n"] == 2
    assert summarise(rows[:1])["comprehensiveness"] == {"mean": 0.2, "se": 0.0}
