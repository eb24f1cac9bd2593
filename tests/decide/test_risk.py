"""Risk-controlled abstention: the LTT guarantee on planted data, a hand check, staging, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from caveat.decide import InfeasibleRiskError, RiskControlled
from caveat.errors import ConfigError, DataError, NotCalibratedError


def planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scores ~ U(0, 1), P(error | s) = 0.08 s^2, so the selective risk is R(lam) = 0.08 lam^2 / 3."""
    scores = rng.random(n)
    return scores, rng.random(n) < 0.08 * scores**2


def true_risk(lam: float) -> float:
    return 0.08 * min(max(lam, 0.0), 1.0) ** 2 / 3  # lam = -inf: nothing answered, no risk


def test_risk_bound_holds_with_probability_one_minus_delta():
    # R(lam) = target at lam* = sqrt(0.75) ~ 0.87. Over 400 calibration draws the true risk at the
    # chosen threshold may exceed the target in at most delta of them (+0.03 for Monte-Carlo noise),
    # and the realised error rate on a large test set likewise (+0.05: it adds test-set noise).
    # allow_empty: a few draws find no threshold (abstaining on all is safe, and counted as such).
    rng = np.random.default_rng(0)
    target, delta, trials = 0.02, 0.05, 400
    over_true, over_realised, coverage = 0, 0, []
    for _ in range(trials):
        rc = RiskControlled(target, delta, allow_empty=True).calibrate(*planted(2000, rng))
        over_true += true_risk(rc.threshold) > target
        test_scores, test_errors = planted(20000, rng)
        answered = rc.decide(test_scores)
        over_realised += answered.any() and test_errors[answered].mean() > target
        coverage.append(answered.mean())
    assert over_true / trials <= delta + 0.03
    assert over_realised / trials <= delta + 0.05
    assert 0.5 < np.median(coverage) < math.sqrt(0.75)  # useful, and never past the true limit on average


def reference_ltt(scores, errors, target, delta):
    """Plain-loop Learn-then-Test, for checking the vectorised one."""
    chosen = None
    for lam in sorted(set(scores)):
        answered = [e for s, e in zip(scores, errors) if s <= lam]
        if (1 - target) ** len(answered) > delta:  # not rejectable even with zero errors: skip
            continue
        if binom.cdf(sum(answered), len(answered), target) > delta:
            break
        chosen = lam
    return chosen


def test_matches_a_plain_loop_on_small_cases():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = np.round(rng.random(150), 2)  # ties, answered together
        errors = rng.random(150) < 0.3 * scores
        expected = reference_ltt(scores.tolist(), errors.tolist(), 0.1, 0.2)
        rc = RiskControlled(0.1, 0.2, allow_empty=True).calibrate(scores, errors)
        if expected is None:
            assert rc.threshold == -math.inf
        else:
            answered = scores <= expected
            assert rc.threshold == expected
            assert rc.coverage_calibration == pytest.approx(answered.mean())
            assert rc.risk_calibration == pytest.approx(errors[answered].mean())


def test_by_hand():
    # target 0.1, delta 0.1: 22 answered with 0 errors reject (0.9^22 = 0.098). The 30 most confident
    # are right, then every input errs: the sequence rejects up to 30 answered and stops at 31
    # (binom.cdf(1, 31, 0.1) = 0.15 > 0.1).
    scores = np.arange(60) / 60
    errors = np.arange(60) >= 30
    rc = RiskControlled(0.1, 0.1, score="entropy").calibrate(scores, errors)
    assert rc.threshold == scores[29]
    assert rc.coverage_calibration == 0.5 and rc.risk_calibration == 0.0
    np.testing.assert_array_equal(rc.decide([0.0, 29 / 60, 0.49, 0.9]), [True, True, False, False])
    assert rc.guarantee == "risk ≤ 10% at 90% confidence"


def test_infeasible_target_says_what_to_change():
    scores, errors = planted(200, np.random.default_rng(2))
    with pytest.raises(
        InfeasibleRiskError, match=r"target_risk=0.001, delta=0.05\) on n=200 .*larger target_risk.*allow_empty=True"
    ):
        RiskControlled(0.001, 0.05).calibrate(scores, errors)
    rc = RiskControlled(0.001, 0.05, allow_empty=True).calibrate(scores, errors)
    assert rc.threshold == -math.inf and not rc.decide(scores).any()
    state = json.loads(json.dumps(rc.state()))
    assert state["threshold"] is None
    assert RiskControlled.from_state(state).threshold == -math.inf


def test_state_round_trips_through_json():
    scores, errors = planted(3000, np.random.default_rng(3))
    rc = RiskControlled(0.02, 0.1).calibrate(scores, errors)
    loaded = RiskControlled.from_state(json.loads(json.dumps(rc.state())))
    assert (loaded.threshold, loaded.coverage_calibration, loaded.risk_calibration) == (
        rc.threshold,
        rc.coverage_calibration,
        rc.risk_calibration,
    )
    assert RiskControlled.from_state(RiskControlled().state()).threshold is None


def test_decide_before_calibrate_says_what_to_call():
    with pytest.raises(NotCalibratedError, match=r"call calibrate\(scores, errors\) .* first"):
        RiskControlled().decide([0.1, 0.2])


@pytest.mark.parametrize("name", ["target_risk", "delta"])
@pytest.mark.parametrize("value", [0, 1, -0.5, 2, "0.05", None])
def test_bad_levels_are_named(name, value):
    with pytest.raises(ConfigError, match=rf"{name} must be in \(0, 1\); got"):
        RiskControlled(**{name: value})


def test_bad_arrays_are_named():
    rc = RiskControlled(0.1, 0.1)
    with pytest.raises(DataError, match=r"errors must have shape \(3,\)"):
        rc.calibrate([0.1, 0.2, 0.3], [True])
    with pytest.raises(DataError, match="errors must be bool"):
        rc.calibrate([0.1, 0.2, 0.3], [0, 2, 1])
    with pytest.raises(DataError, match=r"scores must be finite \(or \+inf: never answered\); got nan at position 1"):
        rc.calibrate([0.1, np.nan, 0.3], [0, 1, 1])
    with pytest.raises(DataError, match="non-empty 1-D"):
        rc.calibrate(np.zeros((2, 2)), [0, 1])


def mixture_risk(lam: float, pi: float) -> float:
    """Selective risk of the planted mixture: in-scope as ``planted``; out-of-scope scores ~ U(0.5, 1.3)."""
    lam = min(max(lam, 0.0), 1.3)
    a, m, o = min(lam, 1.0), 0.08 * min(lam, 1.0) ** 3 / 3, min(max((lam - 0.5) / 0.8, 0.0), 1.0)
    answered = (1 - pi) * a + pi * o
    return ((1 - pi) * m + pi * o) / answered if answered > 0 else 0.0


def test_mixture_bound_holds_with_out_of_scope_traffic():
    # Deployment: 10% out-of-scope inputs, any answer to them wrong. The calibration sets hold
    # 4000 in-scope and 1000 out-of-scope inputs (their own share is not the deployment one).
    rng = np.random.default_rng(3)
    target, delta, pi, trials = 0.02, 0.05, 0.1, 200
    over, thresholds = 0, []
    for _ in range(trials):
        scores, errors = planted(4000, rng)
        rc = RiskControlled(target, delta, allow_empty=True, starts=4).calibrate(
            scores, errors, ood_scores=0.5 + 0.8 * rng.random(1000), ood_rate=pi
        )
        over += mixture_risk(rc.threshold, pi) > target
        thresholds.append(rc.threshold)
    assert over / trials <= delta + 0.03
    # useful: the true limit, where the mixture risk reaches 2%, is lam = 0.549
    assert 0.4 < np.median(thresholds) <= 0.549
    # ignoring out-of-scope traffic overshoots: the in-scope-only threshold answers many of them
    plain = [
        RiskControlled(target, delta, allow_empty=True).calibrate(*planted(2000, rng)).threshold for _ in range(21)
    ]
    assert mixture_risk(np.median(plain), pi) > 2 * target


def test_mixture_state_round_trip_and_errors():
    rng = np.random.default_rng(4)
    scores, errors = planted(3000, rng)
    rc = RiskControlled(0.05, 0.1).calibrate(scores, errors, ood_scores=0.5 + rng.random(500), ood_rate=0.1)
    back = RiskControlled.from_state(json.loads(json.dumps(rc.state())))
    assert back.threshold == rc.threshold and back.ood_rate == 0.1 and back.n_ood_calibration == 500
    assert 0 <= back.ood_coverage_calibration <= 1
    with pytest.raises(ConfigError, match="needs both ood_scores"):
        RiskControlled(0.05, 0.1).calibrate(scores, errors, ood_rate=0.1)
    with pytest.raises(ConfigError, match="ood_rate must be"):
        RiskControlled(0.05, 0.1).calibrate(scores, errors, ood_scores=[0.9], ood_rate=1.5)
    # inputs another check never lets through (+inf) are never answered
    gated = np.where(np.arange(3000) % 2 == 0, np.inf, scores)
    rc = RiskControlled(0.05, 0.1).calibrate(gated, errors)
    assert np.isfinite(rc.threshold) and rc.coverage_calibration <= 0.5


def test_several_starts_keep_the_guarantee_and_survive_an_early_error():
    rng = np.random.default_rng(7)
    target, delta, trials = 0.02, 0.05, 300
    over = 0
    for _ in range(trials):
        rc = RiskControlled(target, delta, allow_empty=True, starts=4).calibrate(*planted(2000, rng))
        over += true_risk(rc.threshold) > target
    assert over / trials <= delta + 0.03
    # label noise among the most confident inputs: one error in the first 200 ends a single sequence
    scores, errors = planted(4000, rng)
    errors[np.argsort(scores)[[3, 40]]] = True
    single = RiskControlled(target, delta, allow_empty=True).calibrate(scores, errors)
    several = RiskControlled(target, delta, allow_empty=True, starts=4).calibrate(scores, errors)
    assert single.threshold == -math.inf and several.threshold > 0.5
    assert RiskControlled.from_state(several.state()).starts == 4
    with pytest.raises(ConfigError, match="starts must be an integer >= 1"):
        RiskControlled(target, delta, starts=0)
