"""Covariate shift with a planted, known density ratio: the estimated ratio recovers it, and the weighted
temperature and prediction sets recover the target's where the unweighted ones fail."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.calibration.shift import TargetShift, choose_temperature
from caveat.decide.conformal import ConformalClassifier
from caveat.decide.shift import DensityRatio, effective_sample_size, rejection_sample, weighted_quantile
from caveat.errors import ConfigError, DataError
from caveat.uncertainty.methods.temperature import TemperatureScaling

MU = 1.5  # source x ~ N(0, 1), target x ~ N(MU, 1): p_t(x) / p_s(x) = exp(MU x - MU² / 2)


def ratio(x: np.ndarray) -> np.ndarray:
    return np.exp(MU * x - MU**2 / 2)


def draw(rng: np.random.Generator, n: int, target: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, binary logits (n, 2) and labels; p(y = 1 | x) = sigmoid(2x) in both domains, and the model is
    three times over-confident for x > 0.5, where the target lives: the domains need different temperatures."""
    x = rng.normal(MU if target else 0.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    z = 2 * x * (1 + 2 * (x > 0.5))
    return x, np.c_[np.zeros(n), z], y


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_density_ratio_recovers_a_known_gaussian_ratio():
    rng = np.random.default_rng(0)
    shift = np.array([1.0, 0.5])
    source, target = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)) + shift
    dr = DensityRatio().fit(source, target)
    estimated = np.log(dr.weights(source))
    true = source @ shift - shift @ shift / 2  # the log ratio of two unit Gaussians
    assert np.corrcoef(estimated, true)[0, 1] > 0.99
    assert np.abs(estimated - true).mean() < 0.15
    assert 0.7 < dr.auroc < 0.85  # Φ(|shift| / √2) = 0.785
    again = DensityRatio.from_state(json.loads(json.dumps(dr.state())))
    np.testing.assert_allclose(again.weights(source), dr.weights(source))


def test_density_ratio_sees_no_shift_between_draws_of_one_distribution():
    rng = np.random.default_rng(1)
    dr = DensityRatio().fit(rng.normal(size=(800, 3)), rng.normal(size=(800, 3)))
    w = dr.weights(rng.normal(size=(800, 3)))
    assert effective_sample_size(w) > 0.95 * len(w)  # near-equal weights
    assert dr.auroc < 0.56


def test_density_ratio_errors_name_the_fix():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="at least 20"):
        DensityRatio().fit(rng.normal(size=(10, 2)), rng.normal(size=(100, 2)))
    with pytest.raises(DataError, match="width"):
        DensityRatio().fit(rng.normal(size=(50, 2)), rng.normal(size=(50, 3)))


def test_weighted_quantile_matches_its_definition_by_brute_force():
    rng = np.random.default_rng(2)
    s, w = rng.random(30), rng.exponential(size=30)
    for wt in (0.0, 0.5, 3.0, 1e6):
        q = weighted_quantile(s, w, np.array([wt]), 0.1)[0]
        # smallest calibration score whose weighted CDF (with the test point's mass at +inf) reaches 0.9
        reach = [c for c in np.sort(s) if w[s <= c].sum() / (w.sum() + wt) >= 0.9 - 1e-12]
        assert q == (reach[0] if reach else np.inf)
    # equal weights and a test weight of 1: the ordinary split-conformal ceil((n + 1)(1 - alpha))-th score
    k = int(np.ceil(31 * 0.9))
    assert weighted_quantile(s, np.ones(30), np.array([1.0]), 0.1)[0] == np.sort(s)[k - 1]


def test_effective_sample_size_and_rejection_sample():
    assert effective_sample_size(np.ones(40)) == pytest.approx(40)
    assert effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1)
    rng = np.random.default_rng(3)
    x = rng.normal(size=20000)
    keep = rejection_sample(ratio(x), seed=0)
    assert keep.mean() == pytest.approx(ratio(x).mean() / ratio(x).max(), rel=0.1)
    # what is kept is distributed as the target, N(MU, 1), truncated by the source's reach
    assert x[keep].mean() > 1.0 and abs(x[keep].mean() - MU) < 0.3
    with pytest.raises(DataError, match="every importance weight is 0"):
        rejection_sample(np.zeros(5))


def test_weighted_temperature_recovers_the_targets_and_cross_validation_keeps_it():
    rng = np.random.default_rng(4)
    xs, zs, ys = draw(rng, 2000, target=False)
    _, zt, yt = draw(rng, 20000, target=True)
    plain = TemperatureScaling().fit(zs, ys).temperature
    oracle = TemperatureScaling().fit(zt, yt).temperature  # fitted on target labels
    weighted = TemperatureScaling().fit(zs, ys, sample_weight=ratio(xs)).temperature
    assert abs(plain - oracle) / oracle > 0.3
    assert abs(weighted - oracle) / oracle < 0.08
    ts, report = choose_temperature(zs, ys, ratio(xs))
    assert report["kept"] == "weighted_temperature" and ts.temperature == pytest.approx(weighted)
    assert report["effective_sample_size"] == pytest.approx(effective_sample_size(ratio(xs)))


def test_choose_temperature_keeps_the_plain_fit_when_weights_carry_no_shift():
    rng = np.random.default_rng(5)
    xs, zs, ys = draw(rng, 1000, target=False)
    noise = rng.exponential(size=len(xs))  # weights unrelated to the data: the weighted fit is only noisier
    noise[:3] *= 200
    ts, report = choose_temperature(zs, ys, noise)
    assert report["kept"] == "temperature" and ts.temperature == pytest.approx(
        TemperatureScaling().fit(zs, ys).temperature
    )


def _coverage(n: int, reps: int, weighted: bool, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    covered = []
    for _ in range(reps):
        xs, zs, ys = draw(rng, n, target=False)
        xt, zt, yt = draw(rng, 300, target=True)
        cp = ConformalClassifier("lac", 0.1)
        if weighted:
            sets = cp.calibrate(softmax(zs), ys, weights=ratio(xs)).predict_set(softmax(zt), weights=ratio(xt))
        else:
            sets = cp.calibrate(softmax(zs), ys).predict_set(softmax(zt))
        covered.append(sets[np.arange(len(yt)), yt].mean())
    return float(np.mean(covered)), float(np.std(covered) / np.sqrt(reps))


def test_weighted_conformal_covers_the_target_where_unweighted_does_not():
    """Tibshirani et al. (2019): coverage >= 1 - alpha on the target, averaged over calibration draws. With
    n = 30 the test input's own weight matters: leaving it out of the quantile under-covers (~0.885)."""
    weighted, se = _coverage(30, 1500, weighted=True)
    assert weighted >= 0.9 - 2 * se
    assert weighted < 0.93  # valid, not trivially conservative
    unweighted, _ = _coverage(200, 200, weighted=False)
    assert abs(unweighted - 0.9) > 0.025  # the planted shift moves plain split conformal off its level


def test_weighted_conformal_state_round_trip_and_errors():
    rng = np.random.default_rng(6)
    xs, zs, ys = draw(rng, 200, target=False)
    xt, zt, _ = draw(rng, 50, target=True)
    cp = ConformalClassifier("aps", 0.1).calibrate(softmax(zs), ys, weights=ratio(xs))
    again = ConformalClassifier.from_state(json.loads(json.dumps(cp.state())))
    np.testing.assert_array_equal(
        again.predict_set(softmax(zt), weights=ratio(xt)), cp.predict_set(softmax(zt), weights=ratio(xt))
    )
    with pytest.raises(DataError, match="pass the inputs' importance weights"):
        cp.predict_set(softmax(zt))
    with pytest.raises(ConfigError, match="calibrated without importance weights"):
        ConformalClassifier("lac", 0.1).calibrate(softmax(zs), ys).predict_set(softmax(zt), weights=ratio(xt))
    with pytest.raises(ConfigError, match="do not combine"):
        ConformalClassifier("lac", 0.1, class_conditional=True).calibrate(softmax(zs), ys, weights=ratio(xs))
    with pytest.raises(DataError, match="non-negative"):
        ConformalClassifier("lac", 0.1).calibrate(softmax(zs), ys, weights=-ratio(xs))


def test_target_shift_reads_log_probabilities_at_the_source_temperature():
    rng = np.random.default_rng(7)
    _, zs, _ = draw(rng, 500, target=False)
    _, zt, _ = draw(rng, 500, target=True)
    shift = TargetShift.fit(zs, zt, 2.0)
    w_source, w_target = shift.weights(zs), shift.weights(zt)
    assert w_target.mean() > 2 * w_source.mean()  # target-like inputs weigh more
    again = TargetShift.from_state(json.loads(json.dumps(shift.state())))
    np.testing.assert_allclose(again.weights(zt), w_target)


def test_risk_threshold_on_a_rejection_sample_controls_the_target_risk():
    """Errors depend on x where the score cannot see it (15% more for x > 1: half of the target, 16% of the
    source). Chosen on a rejection sample drawn with the true weights (Park et al. 2022), the threshold holds on
    the target in >= 1 - delta of 200 calibration draws; chosen on a uniform subsample of the same size, or on
    all of the source, it breaks far more often."""
    from caveat.decide.risk import RiskControlled

    def sample(rng, n, target):
        x, u = rng.normal(1.0 if target else 0.0, 1.0, n), rng.random(n)
        return x, u, rng.random(n) < 0.2 * u + 0.15 * (x > 1)

    def weights(x):
        return np.exp(x - 0.5)  # N(1, 1) over N(0, 1)

    rng = np.random.default_rng(8)
    _, u_t, e_t = sample(rng, 1_000_000, target=True)

    def realised(threshold):
        answered = u_t <= (threshold if threshold is not None else -np.inf)
        return e_t[answered].mean() if answered.any() else 0.0

    target, delta, draws = 0.1, 0.1, 200
    broken = {"weighted": 0, "uniform": 0, "all": 0}
    for draw_ in range(draws):
        x, u, e = sample(rng, 20_000, target=False)
        keep = rejection_sample(weights(x), seed=draw_)
        uniform = np.random.default_rng(draw_).random(len(x)) < keep.mean()
        for name, m in (("weighted", keep), ("uniform", uniform), ("all", slice(None))):
            rc = RiskControlled(target, delta, allow_empty=True, starts=2).calibrate(u[m], e[m])
            broken[name] += realised(rc.threshold) > target
    assert broken["weighted"] / draws <= delta
    assert broken["uniform"] / draws > 2 * delta and broken["all"] / draws > 2 * delta


def test_weight_warnings_say_when_weights_are_fragile_or_see_no_shift():
    from caveat.calibration.shift import weight_warnings

    assert weight_warnings(300, 0.8) == ""
    assert "effective sample size of 12" in weight_warnings(12, 0.8)
    words = weight_warnings(2900, 0.54)
    assert "AUROC 0.54" in words and "label a sample of the target" in words
