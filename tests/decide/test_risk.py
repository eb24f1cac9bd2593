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


# --- exact references: the fallback procedure over several starts, and the mixture's joint p-value -------------


def reference_fallback(scores, errors, target, delta, starts):
    """Plain-loop fallback procedure (Wiens 2003) over the distinct scores, for checking the vectorised one."""
    lams = sorted(set(scores))
    counts = [(sum(s <= lam for s in scores), sum(e for s, e in zip(scores, errors) if s <= lam)) for lam in lams]
    share = delta / starts
    begin = []
    for j in range(starts):
        t_j = target / 2**j
        first = next((i for i, (a, _) in enumerate(counts) if (1 - t_j) ** a <= share), None)
        if first is not None:
            begin.append(first)
    level, previous, chosen = 0.0, False, None
    for i, (a, k) in enumerate(counts):
        level = share * begin.count(i) + (level if previous else 0.0)
        previous = level > 0 and binom.cdf(k, a, target) <= level
        if previous:
            chosen = lams[i]
    return chosen


def test_several_starts_match_a_plain_loop_of_the_fallback_procedure():
    rng = np.random.default_rng(11)
    differs_from_full_level = 0
    for trial in range(40):
        scores = np.round(rng.random(300), 3)
        errors = rng.random(300) < 0.12 * scores
        errors[np.argsort(scores)[rng.integers(0, 40)]] = True  # an early error: later starts matter
        for starts in (2, 3):
            expected = reference_fallback(scores.tolist(), errors.tolist(), 0.05, 0.1, starts)
            rc = RiskControlled(0.05, 0.1, allow_empty=True, starts=starts).calibrate(scores, errors)
            assert rc.threshold == (-math.inf if expected is None else expected), (trial, starts)
            # the split matters on this data: each start at the full delta would choose otherwise
            differs_from_full_level += reference_fallback(
                scores.tolist(), errors.tolist(), 0.05, 0.1 * starts, starts
            ) != (expected)
    assert differs_from_full_level >= 5


def brute_mixture_pvalue(k, a, oa, m, w, pi, t, grid=48):
    a = int(a)
    """The joint p-value by full enumeration of (K, O), each piece of the H0 line bounded by its smallest r and o."""
    c = pi * (1 - t) / m
    t_obs = w * (k / a - t) + c * oa
    if t_obs >= 0:
        return 1.0
    o_max = min(1.0, t * w / (pi * (1 - t)))
    best = 0.0
    for g in range(grid):
        o = g / grid * o_max
        r = max(t - pi * (1 - t) * ((g + 1) / grid * o_max) / w, 0.0)
        j, kk = np.arange(m + 1)[:, None], np.arange(a + 1)[None, :]  # every (O, K) outcome
        below = w * (kk / a - t) + c * j <= t_obs + 1e-12
        best = max(best, float((binom.pmf(j, m, o) * binom.pmf(kk, a, r) * below).sum()))
    return min(best, 1.0)


def test_mixture_pvalue_matches_full_enumeration_and_is_never_below_the_true_supremum():
    from caveat.decide.ltt import mixture_pvalue

    pi, t, m = 0.2, 0.1, 30
    cases = [(0, 60, 0, 0.7), (2, 60, 1, 0.7), (3, 80, 0, 0.6), (1, 50, 2, 0.8), (5, 90, 1, 0.75)]
    k, a, oa, w = (np.array(x, dtype=float) for x in zip(*cases))
    ours = mixture_pvalue(k, a, oa, m, w, pi, t)
    for (kk, aa, oo, ww), p in zip(cases, ours):
        assert p == pytest.approx(brute_mixture_pvalue(kk, aa, oo, m, ww, pi, t), rel=1e-9, abs=1e-12)
        # the supremum over the H0 line, on a grid 20x finer without bracketing, never exceeds it
        c = pi * (1 - t) / m
        o_max = min(1.0, t * ww / (pi * (1 - t)))
        finer = 0.0
        for o in np.linspace(0, o_max, 961):
            r = max(t - pi * (1 - t) * o / ww, 0.0)
            j = np.arange(m + 1)
            k_max = np.floor(aa * (t + (ww * (kk / aa - t) + c * oo - c * j) / ww) + 1e-9)
            finer = max(finer, float((binom.pmf(j, m, o) * np.where(k_max >= 0, binom.cdf(k_max, aa, r), 0)).sum()))
        assert finer <= p + 1e-12 and p <= finer + 0.02


def reference_mixture_threshold(scores, errors, ood, pi, target, delta):
    """Plain loop of the mixture test with one start (the first threshold that would pass with no error and no
    out-of-scope answer): the in-scope answer rate's lower bound spends 5% of delta."""
    from scipy.stats import beta as beta_dist

    spent = 0.05 * delta
    n, m = len(scores), len(ood)
    chosen = None
    for lam in sorted(set(scores) | set(ood)):
        a = sum(s <= lam for s in scores)
        k = sum(e for s, e in zip(scores, errors) if s <= lam)
        oa = sum(o <= lam for o in ood)
        a_low = 0.0 if a == 0 else beta_dist.ppf(spent, a, n - a + 1)

        def p_value(k, oa, a=a, a_low=a_low):
            if a == 0 or a_low == 0:
                return 1.0
            return brute_mixture_pvalue(k, a, oa, m, (1 - pi) * a_low, pi, target) + spent

        p = p_value(k, oa)
        if chosen is None and p_value(0, 0) > delta:  # before the start (no error-free threshold passes): not tested
            continue
        if p > delta:
            break
        chosen = lam
    return chosen


def test_mixture_threshold_matches_a_plain_loop():
    rng = np.random.default_rng(12)
    for _ in range(3):
        scores = np.round(rng.random(70), 2)
        errors = rng.random(70) < 0.1 * scores
        ood = np.round(0.4 + rng.random(25), 2)
        expected = reference_mixture_threshold(scores.tolist(), errors.tolist(), ood.tolist(), 0.1, 0.15, 0.2)
        rc = RiskControlled(0.15, 0.2, allow_empty=True).calibrate(scores, errors, ood_scores=ood, ood_rate=0.1)
        assert rc.threshold == (-math.inf if expected is None else expected)


def old_mixture_threshold(scores, errors, ood, pi, target, delta):
    """Today's bound before this change: Bonferroni over three Clopper-Pearson bounds on m, a and o (one sequence)."""
    from scipy.stats import beta as beta_dist

    d3, n, m = delta / 3, len(scores), len(ood)
    order = np.argsort(scores, kind="stable")
    s_sorted, cum = scores[order], np.cumsum(errors[order])
    chosen, started = -math.inf, False
    for lam in np.unique(np.r_[scores, ood]):
        a = np.searchsorted(s_sorted, lam, side="right")
        k = cum[a - 1] if a else 0
        oa = int((ood <= lam).sum())

        def up(x, size):
            return 1.0 if x >= size else beta_dist.ppf(1 - d3, x + 1, size - x)

        l_a = 0.0 if a == 0 else beta_dist.ppf(d3, a, n - a + 1)
        bound = ((1 - pi) * up(k, n) + pi * up(oa, m)) / max((1 - pi) * l_a + pi * up(oa, m), 1e-12)
        best = ((1 - pi) * up(0, n) + pi * up(0, m)) / max((1 - pi) * l_a + pi * up(0, m), 1e-12)
        if not started and best > target:
            continue
        started = True
        if bound > target:
            break
        chosen = lam
    return chosen


def test_mixture_guarantee_at_the_boundary_and_tighter_than_three_bonferroni_bounds():
    # Every threshold's mixture risk sits just above the target (in-scope error rate and out-of-scope answer rate
    # do not depend on the score), so any certified threshold is a violation: they may happen in <= delta of draws.
    rng = np.random.default_rng(13)
    target, delta, pi, trials = 0.05, 0.1, 0.1, 200
    r_in = 0.02
    # with answer rates a = o' = lam: R = ((1 - pi) r_in + pi o) / ((1 - pi) + pi o), set to 1.02 target
    o_rate = (1 - pi) * (1.02 * target - r_in) / (pi * (1 - 1.02 * target))
    violations = 0
    for _ in range(trials):
        scores = rng.random(600)
        errors = rng.random(600) < r_in
        ood = np.where(rng.random(100) < o_rate, rng.random(100), np.inf)
        rc = RiskControlled(target, delta, allow_empty=True).calibrate(scores, errors, ood_scores=ood, ood_rate=pi)
        violations += np.isfinite(rc.threshold)
    true_risk = ((1 - pi) * r_in + pi * o_rate) / ((1 - pi) + pi * o_rate)
    assert target < true_risk < 1.05 * target
    assert violations / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)
    # tighter: on planted data with a usable threshold, the new test certifies at least as much, usually more
    gains = []
    for _ in range(30):
        scores, errors = planted(1500, rng)
        ood = 0.5 + 0.8 * rng.random(200)
        new = RiskControlled(0.02, 0.05, allow_empty=True).calibrate(scores, errors, ood_scores=ood, ood_rate=pi)
        old = old_mixture_threshold(scores, errors, ood, pi, 0.02, 0.05)
        gains.append(max(new.threshold, 0.0) - max(old, 0.0))  # in-scope coverage gained (scores ~ U(0, 1))
    assert min(gains) >= 0 and np.median(gains) > 0.02


def test_an_infeasible_target_names_the_smallest_one_this_data_certifies():
    scores, errors = planted(300, np.random.default_rng(21))
    rc = RiskControlled(0.002, 0.05, allow_empty=True).calibrate(scores, errors)
    assert rc.threshold == -math.inf
    best = rc.advice["target_risk"]
    at_best = RiskControlled(best, 0.05).calibrate(scores, errors)
    assert at_best.coverage_calibration == pytest.approx(rc.advice["coverage"]) and at_best.coverage_calibration > 0
    below = RiskControlled(round(best - 0.001, 3), 0.05, allow_empty=True).calibrate(scores, errors)
    assert below.threshold == -math.inf
    words = rc.summary
    assert "abstained on" in words and f"--target-risk {best:g}" in words
    assert json.loads(json.dumps(rc.state()))["advice"]["target_risk"] == best
    assert RiskControlled.from_state(rc.state()).summary == words
    with pytest.raises(InfeasibleRiskError, match=f"target_risk={best:g}"):
        RiskControlled(0.002, 0.05).calibrate(scores, errors)
    # the frontier: certified coverage per target, as calibrate finds it
    rows = rc.frontier(scores, errors, targets=(0.01, 0.02, 0.05))
    for row in rows:
        fitted = RiskControlled(row["target_risk"], 0.05, allow_empty=True).calibrate(scores, errors)
        assert row["coverage"] == pytest.approx(fitted.coverage_calibration)
    assert "answers" in RiskControlled(0.05, 0.05).calibrate(scores, errors).summary
