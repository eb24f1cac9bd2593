"""PRR against a continuous quality: closed forms on planted data, ties, agreement with lm-polygraph and with the
binary PRR, bootstrap, and the per-estimator row for summaries."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from caveat.errors import ConfigError, DataError
from caveat.generate.metrics import prr
from caveat.generate.rejection import prr_quality, quality_bootstrap_interval, quality_coverage, quality_metrics
from caveat.uncertainty.errors import ArrayError


def lm_polygraph_prr(estimator: np.ndarray, quality: np.ndarray) -> float:
    """lm-polygraph's PredictionRejectionArea (min-max normalised quality, mean kept quality at each rejection
    rate) and its normalisation (estimator - random) / (oracle - random), random taken exactly (the mean)."""

    def area(e, q):
        kept = np.cumsum(q[np.argsort(e)]) / np.arange(1, len(q) + 1)
        return kept[::-1].sum() / len(q)

    q = (quality - quality.min()) / (quality.max() - quality.min())
    random = q.mean()
    return (area(estimator, q) - random) / (area(-q, q) - random)


def planted(n: int, *, signal: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous, tie-free scores that fall by ``signal`` per unit of a ROUGE-like quality in [0, 1]."""
    rng = np.random.default_rng(seed)
    quality = rng.beta(2, 5, n)
    return rng.normal(size=n) - signal * quality, quality


def test_hand_computed_case():
    # Kept lowest score first, the qualities are [0.5, 1.0, 0.0]: mean of the kept n = 1, 2, 3 is 1/2, 3/4, 1/2,
    # area 7/12. Oracle [1, 0.5, 0]: 1, 3/4, 1/2, area 3/4. Random: the mean 1/2.
    # PRR = (7/12 - 1/2) / (3/4 - 1/2) = 1/3.
    scores, quality = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 0.0])
    assert prr_quality(scores, quality) == pytest.approx(1 / 3)


def test_oracle_is_one_constant_is_zero():
    _, quality = planted(50, signal=0.0, seed=1)
    assert prr_quality(-quality, quality) == pytest.approx(1.0)
    assert prr_quality(1.0 - 3.0 * quality, quality) == pytest.approx(1.0)  # any decreasing map of quality
    # a constant score is one tied group: the expected kept mean is the overall mean at every n
    assert prr_quality(np.full(50, 7.0), quality) == pytest.approx(0.0, abs=1e-12)


def test_plus_quality_is_minus_one_when_symmetric_else_the_derived_value():
    even = np.array([0.0, 0.25, 0.5, 0.75, 1.0])  # symmetric about its mean: rejecting the best first is -1
    assert prr_quality(even, even) == pytest.approx(-1.0)
    binary = np.array([1.0, 0.0, 1.0, 0.0])  # binary with half right is symmetric too
    assert prr_quality(binary, binary) == pytest.approx(-1.0)
    # [1, 0, 0]: oracle keeps 1, 1/2, 1/3 (area 11/18); +quality keeps 0, 0, 1/3 (area 1/9); mean 1/3
    # -> (1/9 - 1/3) / (11/18 - 1/3) = -4/5
    skewed = np.array([1.0, 0.0, 0.0])
    assert prr_quality(skewed, skewed) == pytest.approx(-0.8)
    # in general -sum_n w_n d_n / sum_n d_n, d_n = (mean of the n best) - mean, w_n = n / (N - n), n < N
    _, q = planted(40, signal=0.0, seed=2)
    n = len(q)
    d = np.cumsum(np.sort(q)[::-1])[:-1] / np.arange(1, n) - q.mean()
    w = np.arange(1, n) / (n - np.arange(1, n))
    assert prr_quality(q, q) == pytest.approx(-(w * d).sum() / d.sum(), abs=1e-12)


def test_binary_quality_is_the_binary_prr():
    rng = np.random.default_rng(3)
    scores, errors = rng.integers(0, 5, 200).astype(float), rng.random(200) < 0.3  # ties included
    assert prr_quality(scores, 1.0 - errors) == pytest.approx(prr(scores, errors), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_lm_polygraph_on_tie_free_data_and_is_affine_invariant(seed):
    scores, quality = planted(300, signal=3.0, seed=seed)
    ours = prr_quality(scores, quality)
    assert 0.2 < ours < 0.9
    assert ours == pytest.approx(lm_polygraph_prr(scores, quality), abs=1e-12)
    assert ours == pytest.approx(prr_quality(scores, 100.0 * quality - 7.0), abs=1e-12)


def test_random_scores_on_large_data_are_near_zero():
    rng = np.random.default_rng(4)
    assert abs(prr_quality(rng.random(20_000), rng.beta(2, 5, 20_000))) < 0.05


def test_ties_equal_lm_polygraph_averaged_over_all_tie_orders():
    scores = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 2.0])
    quality = np.array([0.1, 0.9, 0.4, 0.3, 0.6, 0.2])
    groups = [np.flatnonzero(scores == v) for v in np.unique(scores)]
    values = []
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        tie_free = np.empty(len(scores))
        tie_free[np.concatenate(orders)] = np.arange(len(scores))  # ranks consistent with scores
        values.append(lm_polygraph_prr(tie_free, quality))
    assert len(values) == 2 * 6 * 1
    assert prr_quality(scores, quality) == pytest.approx(np.mean(values), abs=1e-12)
    order = np.array([5, 3, 1, 0, 4, 2])
    assert prr_quality(scores[order], quality[order]) == pytest.approx(prr_quality(scores, quality), abs=1e-12)


def test_constant_quality_and_bad_arrays_are_errors():
    with pytest.raises(DataError, match=r"PRR is undefined: all 3 outputs have the same quality \(0.5\)"):
        prr_quality(np.arange(3.0), np.full(3, 0.5))
    with pytest.raises(DataError, match="bootstrap interval is undefined: all 3 outputs"):
        quality_bootstrap_interval(prr_quality, np.arange(3.0), np.zeros(3))
    with pytest.raises(ArrayError, match=r"quality must have shape \(3,\)"):
        prr_quality(np.arange(3.0), np.zeros(2))
    with pytest.raises(ArrayError, match="quality contains NaN or inf"):
        prr_quality(np.arange(2.0), np.array([0.1, np.nan]))
    with pytest.raises(ArrayError, match="scores contain NaN or inf"):
        prr_quality(np.array([0.1, np.inf]), np.array([0.1, 0.2]))


def test_bootstrap_contains_the_estimate_narrows_with_n_and_redraws_constant_resamples():
    widths = []
    for n in (200, 2000):
        scores, quality = planted(n, signal=3.0, seed=n)
        lo, hi = quality_bootstrap_interval(prr_quality, scores, quality, n_boot=200, seed=0)
        assert lo < prr_quality(scores, quality) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(10)
    seen = []

    def record(scores, quality):
        seen.append(quality.copy())
        return float(quality.mean())

    quality = np.array([1.0, 0.0, 0.0, 0.0, 0.0])  # about a third of resamples are all 0
    quality_bootstrap_interval(record, np.arange(5.0), quality, n_boot=200, seed=3)
    assert len(seen) == 200 and all(np.ptp(q) > 0 for q in seen)
    with pytest.raises(ConfigError, match="n_boot must be an integer >= 2; got 1"):
        quality_bootstrap_interval(prr_quality, np.arange(3.0), quality[:3], n_boot=1)


def test_quality_metrics_values_and_json():
    scores, quality = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 0.0])
    m = quality_metrics(scores, quality, coverages=(0.3, 0.5, 1.0), n_boot=100)
    assert set(m) == {"n", "mean_quality", "prr", "prr_ci", "quality_at"}
    assert (m["n"], m["mean_quality"], m["prr"]) == (3, pytest.approx(0.5), pytest.approx(1 / 3))
    assert m["quality_at"] == pytest.approx({"0.3": 0.5, "0.5": 0.75, "1": 0.5})  # kept 1, 2, 3
    assert json.loads(json.dumps(m)) == m
    tied = quality_metrics(np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0]), coverages=(0.25,), n_boot=10)
    assert tied["quality_at"]["0.25"] == pytest.approx(0.25) and tied["prr"] == pytest.approx(0.0)
    with pytest.raises(ConfigError, match=r"coverage must lie in \(0, 1\]; got 0"):
        quality_metrics(scores, quality, coverages=(0,), n_boot=2)


def test_quality_coverage_on_an_even_grid():
    curve = quality_coverage(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 0.0, 0.5, 0.5]), points=5)
    assert curve["coverage"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve["quality"] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.5])  # kept 1, 1, 2, 3, 4
    scores, quality = planted(1000, signal=3.0, seed=9)
    fine = quality_coverage(scores, quality, points=1001)
    assert fine["quality"][-1] == pytest.approx(quality.mean())
    area = np.mean(fine["quality"][1:])
    assert (area - quality.mean()) / (
        np.mean(quality_coverage(-quality, quality, 1001)["quality"][1:]) - quality.mean()
    ) == (pytest.approx(prr_quality(scores, quality), abs=1e-12))
    with pytest.raises(ConfigError, match="points must be an integer >= 2; got 1"):
        quality_coverage(scores, quality, points=1)
