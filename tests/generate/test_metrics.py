"""Selective-answering metrics: hand-computed PRR / AUROC, ties, lm-polygraph agreement, bootstrap."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import aurc, error_detection_auroc
from caveat.generate.metrics import (
    bootstrap_interval,
    estimator_metrics,
    prr,
    risk_coverage,
)
from caveat.uncertainty.errors import ArrayError


def lm_polygraph_area(estimator: np.ndarray, quality: np.ndarray) -> float:
    """lm-polygraph's PredictionRejectionArea: mean quality of the kept part at each rejection rate."""
    kept_quality = np.cumsum(quality[np.argsort(estimator)]) / np.arange(1, len(quality) + 1)
    return float(kept_quality[::-1].sum() / len(quality))


def lm_polygraph_prr(scores: np.ndarray, errors: np.ndarray, *, num_iter: int | None = None) -> float:
    """(AUC_ue - AUC_random) / (AUC_oracle - AUC_random); random exact, or lm-polygraph's Monte Carlo."""
    quality = 1.0 - errors.astype(float)
    if num_iter is None:
        random = quality.mean()
    else:  # lm-polygraph's get_random_scores: mean area of shuffled ranks
        rng, ranks = np.random.RandomState(42), np.arange(len(quality))
        areas = []
        for _ in range(num_iter):
            rng.shuffle(ranks)
            areas.append(lm_polygraph_area(ranks, quality))
        random = float(np.mean(areas))
    oracle = lm_polygraph_area(-quality, quality)
    return (lm_polygraph_area(scores, quality) - random) / (oracle - random)


def planted(n: int, *, signal: float, rate: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (tie-free) scores that are ``signal`` higher, on average, for errors."""
    rng = np.random.default_rng(seed)
    errors = rng.random(n) < rate
    return rng.normal(size=n) + signal * errors, errors


def test_hand_computed_case():
    # Ranked by score the errors are [0, 1, 0, 1]: risk(n) = 0, 1/2, 1/3, 1/2, area 1/3; the oracle
    # [0, 0, 1, 1] has 0, 0, 1/3, 1/2, area 5/24; error rate 1/2 -> PRR = (1/2 - 1/3) / (1/2 - 5/24)
    # = 4/7. AUROC: of the 4 (error, right) pairs the error scores higher in 3.
    scores, errors = np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, True, False, True])
    assert prr(scores, errors) == pytest.approx(4 / 7)
    assert error_detection_auroc(scores, errors) == pytest.approx(3 / 4)
    assert aurc(scores, errors) == pytest.approx(1 / 3)


def test_perfect_ranking_is_one_reversed_is_negative():
    errors = np.array([False, False, True, True])
    assert prr(np.array([0.1, 0.2, 0.3, 0.4]), errors) == pytest.approx(1.0)
    assert error_detection_auroc(np.array([0.1, 0.2, 0.3, 0.4]), errors) == 1.0
    # reversed: risk(n) = 1, 1, 2/3, 1/2, area 19/24 -> (1/2 - 19/24) / (1/2 - 5/24) = -1
    assert prr(np.array([0.4, 0.3, 0.2, 0.1]), errors) == pytest.approx(-1.0)
    assert error_detection_auroc(np.array([0.4, 0.3, 0.2, 0.1]), errors) == 0.0


def test_random_scores_on_large_data_are_near_zero():
    rng = np.random.default_rng(0)
    scores, errors = rng.random(20_000), rng.random(20_000) < 0.3
    assert abs(prr(scores, errors)) < 0.05  # sd over seeds is about 0.011
    assert error_detection_auroc(scores, errors) == pytest.approx(0.5, abs=0.02)


def test_ties_are_broken_in_expectation():
    errors = np.array([False, True, True, True])
    # groups {0, 1} and {2, 3}: expected risk(n) = 1/2, 1/2, 2/3, 3/4; oracle 0, 1/2, 2/3, 3/4
    # -> PRR = (3/4 - 29/48) / (3/4 - 23/48) = 7/13
    assert prr(np.array([0.0, 0.0, 1.0, 1.0]), errors) == pytest.approx(7 / 13)
    assert prr(np.zeros(4), errors) == pytest.approx(0.0)  # a constant score is random
    assert prr(errors.astype(float), errors) == pytest.approx(1.0)  # a perfect binary score
    rng = np.random.default_rng(1)
    scores, errs = rng.integers(0, 4, 200).astype(float), rng.random(200) < 0.4
    order = rng.permutation(200)
    assert prr(scores[order], errs[order]) == pytest.approx(prr(scores, errs), abs=1e-12)


def test_ties_equal_lm_polygraph_averaged_over_all_tie_orders():
    scores = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 2.0])
    errors = np.array([True, False, False, True, False, True])
    groups = [np.flatnonzero(scores == v) for v in np.unique(scores)]
    values = []
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        tie_free = np.empty(len(scores))
        tie_free[np.concatenate(orders)] = np.arange(len(scores))  # ranks consistent with scores
        values.append(lm_polygraph_prr(tie_free, errors))
    assert len(values) == 2 * 6 * 1
    assert prr(scores, errors) == pytest.approx(np.mean(values), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_lm_polygraph_on_tie_free_data(seed):
    scores, errors = planted(300, signal=1.0, rate=0.35, seed=seed)
    ours = prr(scores, errors)
    assert 0.3 < ours < 0.9
    assert ours == pytest.approx(lm_polygraph_prr(scores, errors), abs=1e-12)
    assert ours == pytest.approx(lm_polygraph_prr(scores, errors, num_iter=1000), abs=5e-3)
    rate, oracle = errors.mean(), lm_polygraph_prr(errors.astype(float), errors)
    assert oracle == pytest.approx(1.0)
    # without ties the area PRR uses is the project's AURC
    oracle_area = np.mean(np.cumsum(np.sort(errors)) / np.arange(1, 301))
    assert ours == pytest.approx((rate - aurc(scores, errors)) / (rate - oracle_area), abs=1e-12)


def test_bootstrap_contains_the_estimate_and_narrows_with_n():
    widths = []
    for n in (200, 2000):
        scores, errors = planted(n, signal=1.0, seed=n)
        for fn in (prr, error_detection_auroc):
            lo, hi = bootstrap_interval(fn, scores, errors, n_boot=300, seed=0)
            assert lo < fn(scores, errors) < hi
            widths.append(hi - lo)
    small_prr, small_auroc, large_prr, large_auroc = widths
    assert large_prr < 0.5 * small_prr and large_auroc < 0.5 * small_auroc  # about 1 / sqrt(10)
    scores, errors = planted(200, signal=1.0, seed=200)
    assert bootstrap_interval(prr, scores, errors, n_boot=300, seed=0) == (
        bootstrap_interval(prr, scores, errors, n_boot=300, seed=0)
    )
    narrow = bootstrap_interval(prr, scores, errors, n_boot=300, level=0.5, seed=0)
    assert widths[0] > narrow[1] - narrow[0] > 0


def test_bootstrap_redraws_one_class_resamples():
    seen = []

    def record(scores, errors):
        seen.append(errors.copy())
        return float(errors.mean())

    errors = np.array([True, False, False, False, False])  # about a third of resamples lack the error
    lo, hi = bootstrap_interval(record, np.arange(5.0), errors, n_boot=200, seed=3)
    assert len(seen) == 200
    assert all(e.any() and not e.all() for e in seen)
    assert 0.2 <= lo <= hi <= 0.8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": 1}, "n_boot must be an integer >= 2; got 1"),
        ({"n_boot": 10.0}, "n_boot must be an integer >= 2; got 10.0"),
        ({"level": 1.0}, r"level must lie in \(0, 1\); got 1.0"),
        ({"level": 95}, r"level must lie in \(0, 1\); got 95"),
    ],
)
def test_bootstrap_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        bootstrap_interval(prr, np.arange(4.0), np.array([0, 1, 0, 1]), **kwargs)


def test_one_class_is_a_data_error():
    with pytest.raises(DataError, match="PRR is undefined: all 3 answers are right"):
        prr(np.arange(3.0), np.zeros(3, bool))
    with pytest.raises(DataError, match="bootstrap interval is undefined: all 3 answers are wrong"):
        bootstrap_interval(prr, np.arange(3.0), np.ones(3, bool))
    with pytest.raises(DataError, match="all 3 answers are wrong"):
        estimator_metrics(np.arange(3.0), np.ones(3, bool))


@pytest.mark.parametrize(
    ("scores", "errors", "message"),
    [
        (np.zeros((2, 2)), np.array([0, 1]), r"scores must be a non-empty 1-D array \(N,\); got shape \(2, 2\)"),
        (np.array([0.1, np.nan]), np.array([0, 1]), "scores contain NaN or inf"),
        (np.array([0.1, 0.2, 0.3]), np.array([0, 1]), r"errors must have shape \(3,\)"),
        (np.array([0.1, 0.2]), np.array([0, 2]), "errors must be bool or 0/1"),
        (np.array([]), np.array([]), "non-empty"),
    ],
)
def test_bad_arrays(scores, errors, message):
    for fn in (prr, estimator_metrics, risk_coverage):
        with pytest.raises(ArrayError, match=message):
            fn(scores, errors)


def test_estimator_metrics_values_and_json():
    scores, errors = np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, True, False, True])
    m = estimator_metrics(scores, errors, coverages=(0.25, 0.75, 1.0), n_boot=200)
    assert set(m) == {"n", "error_rate", "auroc", "auroc_ci", "prr", "prr_ci", "aurc", "accuracy_at"}
    assert (m["n"], m["error_rate"]) == (4, 0.5)
    assert m["auroc"] == pytest.approx(3 / 4) and m["prr"] == pytest.approx(4 / 7)
    assert m["aurc"] == pytest.approx(1 / 3)
    assert m["accuracy_at"] == pytest.approx({"0.25": 1.0, "0.75": 2 / 3, "1": 0.5})
    assert json.loads(json.dumps(m)) == m
    scores, errors = planted(500, signal=1.5, seed=5)
    m = estimator_metrics(scores, errors, n_boot=200)
    assert m["auroc_ci"][0] < m["auroc"] < m["auroc_ci"][1]
    assert m["prr_ci"][0] < m["prr"] < m["prr_ci"][1]
    assert list(m["accuracy_at"]) == ["0.5", "0.8"]
    assert m["accuracy_at"]["0.5"] > m["accuracy_at"]["0.8"] > 1 - m["error_rate"]
    with pytest.raises(ConfigError, match=r"coverage must lie in \(0, 1\]; got 0"):
        estimator_metrics(scores, errors, coverages=(0,), n_boot=2)


def test_risk_coverage_on_an_even_grid():
    curve = risk_coverage(np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, True, False, True]), points=5)
    assert curve["coverage"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve["risk"] == pytest.approx([0.0, 0.0, 0.5, 1 / 3, 0.5])  # answered 1, 1, 2, 3, 4
    tied = risk_coverage(np.zeros(4), np.array([False, True, True, True]), points=3)
    assert tied["risk"] == pytest.approx([0.75, 0.75, 0.75])
    scores, errors = planted(1000, signal=1.0, seed=9)
    fine = risk_coverage(scores, errors, points=1001)
    assert len(fine["risk"]) == 1001 and fine["risk"][-1] == pytest.approx(errors.mean())
    assert np.mean(fine["risk"][1:]) == pytest.approx(aurc(scores, errors), abs=1e-12)
    with pytest.raises(ConfigError, match="points must be an integer >= 2; got 1"):
        risk_coverage(scores, errors, points=1)
