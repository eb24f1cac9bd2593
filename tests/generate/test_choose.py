"""Choosing the estimator on the calibration questions (``--estimator auto``), on planted scores only.

The choice is made on one seeded half and the threshold fitted on the other; these tests check that it
finds a planted good estimator, that neither half leaks into the other's step, that the risk bound still
holds over repeated draws (and that the planted setting is sensitive enough to see a leak), that the policy
records the choice, and that bad candidates are named with the fix.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, norm
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError, DataError
from caveat.generate.choose import STARTS, choose_estimator, default_candidates, split_halves
from caveat.generate.policy import GenerationPolicy
from caveat.generate.sampling import SamplingConfig

SETTINGS = {"lm": "m", "sampling": SamplingConfig(), "rule": "contains"}


def _planted(rng, n, *, good="rauq", noise=("msp", "mean_token_entropy", "lexical_similarity")):
    """Errors at rate 0.3; ``good`` scores are shifted up by 2.5 on errors, the ``noise`` ones ignore them."""
    e = rng.uniform(size=n) < 0.3
    scores = {name: rng.normal(size=n) for name in noise}
    scores[good] = rng.normal(size=n) + 2.5 * e
    return scores, e


def test_auto_picks_the_candidate_planted_to_separate_errors():
    scores, e = _planted(np.random.default_rng(0), 600)
    names = ["msp", "mean_token_entropy", "rauq", "lexical_similarity"]
    choice = choose_estimator(scores, e, candidates=names, target_risk=0.1, delta=0.05, seed=3)
    assert choice.chosen == "rauq" and [c.name for c in choice.candidates][0] == "rauq"
    best, *rest = choice.candidates
    assert best.coverage > 0.5 and best.auroc > 0.9
    assert all(c.coverage == 0 and abs(c.auroc - 0.5) < 0.1 for c in rest)  # noise certifies nothing
    assert choice.reason.startswith("rauq was chosen") and "300 selection questions" in choice.reason
    policy = GenerationPolicy.fit_auto(scores, e, candidates=names, seed=3, target_risk=0.1, **SETTINGS)
    assert policy.estimator == policy.risk.score == "rauq" and policy.risk.n_calibration == 300


def test_the_threshold_sees_only_its_half_and_the_choice_only_the_other():
    rng = np.random.default_rng(1)
    scores, e = _planted(rng, 600)
    names = list(scores)
    args = {"candidates": names, "seed": 7, "target_risk": 0.1, **SETTINGS}
    sel, fit = split_halves(600, 7)
    assert len(sel) == 300 and len(np.intersect1d(sel, fit)) == 0 and len(np.union1d(sel, fit)) == 600
    policy = GenerationPolicy.fit_auto(scores, e, **args)
    # the selection half's errors change (the good estimator still wins): the threshold does not move
    e2 = e.copy()
    e2[sel[:40]] = ~e2[sel[:40]]
    other = GenerationPolicy.fit_auto(scores, e2, **args)
    assert other.selection["candidates"] != policy.selection["candidates"]  # the selection did see the change
    assert other.estimator == policy.estimator and other.risk.state() == policy.risk.state()
    # the threshold half's scores and errors change: every selection figure stays as it was
    e3, scores3 = e.copy(), {n: s.copy() for n, s in scores.items()}
    e3[fit] = ~e3[fit]
    for s in scores3.values():
        s[fit] = rng.normal(size=len(fit))
    third = GenerationPolicy.fit_auto(scores3, e3, **args | {"allow_empty": True})
    assert third.selection == policy.selection and third.risk.n_calibration == len(fit)


def _true_risk(threshold: float, rate: float, shift: float) -> float:
    """P(wrong | score <= threshold) when scores are N(0, 1) on right answers and N(shift, 1) on wrong ones."""
    if not np.isfinite(threshold):
        return 0.0
    wrong, right = rate * norm.cdf(threshold - shift), (1 - rate) * norm.cdf(threshold)
    return wrong / (wrong + right)


def test_the_bound_holds_over_200_draws_and_this_setting_would_catch_a_leak():
    """13 candidates with the same planted separation but independent noise: on any one draw one of them looks
    best by luck. Chosen on one half and thresholded on the other, the true selective risk (exact, from the
    planted mixture: what fresh data gives in the limit) exceeds the target in at most ~delta of draws; the
    limit 29 of 200 is exceeded with probability 1.6% by Binomial(200, 0.1), a procedure failing at exactly
    delta. Thresholding the chosen estimator on the questions the choice saw (the leak this design avoids)
    breaks the bound here, in ~48 of 200 draws, so the setting can tell the two apart."""
    rate, shift, target, delta, n, draws = 0.3, 1.5, 0.15, 0.1, 600, 200
    limit = 29
    assert binom.sf(limit, draws, delta) < 0.02
    names = default_candidates(8)  # 13 estimators that need no further model call
    rng = np.random.default_rng(0)
    honest = leaky = 0
    coverage = []
    for d in range(draws):
        e = rng.uniform(size=n) < rate
        scores = dict(zip(names, rng.normal(size=(len(names), n)) + shift * e, strict=True))  # (K, N) rows
        policy = GenerationPolicy.fit_auto(
            scores, e, candidates=names, seed=d, target_risk=target, delta=delta, allow_empty=True, **SETTINGS
        )
        honest += _true_risk(policy.risk.threshold, rate, shift) > target
        coverage.append(policy.risk.coverage_calibration)
        # the leak: the same choice, thresholded on every calibration question, the selection half included
        leak = RiskControlled(target, delta, starts=STARTS, allow_empty=True).calibrate(scores[policy.estimator], e)
        leaky += _true_risk(leak.threshold, rate, shift) > target
    assert honest <= limit, f"the bound failed in {honest} of {draws} draws"
    assert leaky > limit, f"the planted setting no longer detects a leak ({leaky} of {draws} draws)"
    assert np.mean(coverage) > 0.3  # and the honest policy is not vacuous


def test_the_saved_policy_names_the_chosen_estimator_and_reloads(tmp_path):
    scores, e = _planted(np.random.default_rng(2), 400)
    names = ["msp", "rauq", "mean_token_entropy"]
    policy = GenerationPolicy.fit_auto(
        {n: scores[n] for n in names}, e, candidates=names, seed=5, target_risk=0.15, **SETTINGS
    )
    policy.save(tmp_path / "p.json")
    back = GenerationPolicy.load(tmp_path / "p.json")
    assert back.estimator == "rauq" and back.selection == policy.selection
    sel = back.selection
    assert sel["chosen"] == "rauq" and sel["seed"] == 5 and sel["n_selection"] + sel["n_threshold"] == 400
    assert [c["name"] for c in sel["candidates"]][0] == "rauq" and {c["name"] for c in sel["candidates"]} == set(names)
    assert all(set(c) == {"name", "coverage", "auroc"} for c in sel["candidates"])
    assert "rauq was chosen" in sel["reason"] and "AUROC" in sel["criterion"]
    assert [back.decide(x) for x in (-1.0, 3.0)] == [policy.decide(x) for x in (-1.0, 3.0)]
    # a policy fitted on a named estimator records no choice
    named = GenerationPolicy.fit(scores["rauq"], e, estimator="rauq", target_risk=0.15, **SETTINGS)
    assert named.selection is None and named.state()["selection"] is None


def test_bad_candidates_are_named_with_the_fix():
    scores, e = _planted(np.random.default_rng(3), 100)
    choose = lambda names, s=scores: choose_estimator(s, e, candidates=names, target_risk=0.2)  # noqa: E731
    with pytest.raises(ConfigError, match="unknown estimator 'nope'; choose one of: .*rauq"):
        choose(["msp", "nope"])
    with pytest.raises(ConfigError, match="candidate 'semantic_entropy' has no scores .*score_questions.*drop it"):
        choose(["msp", "semantic_entropy"])
    with pytest.raises(ConfigError, match="at least two candidates; got \\['msp'\\]. Name one estimator directly"):
        choose(["msp"])
    with pytest.raises(ConfigError, match="candidates names msp more than once"):
        choose(["msp", "rauq", "msp"])
    broken = scores | {"msp": np.where(np.arange(100) == 4, np.nan, scores["msp"])}
    with pytest.raises(DataError, match="candidate 'msp' has no score \\(nan\\) for question 4"):
        choose(["msp", "rauq"], broken)


def test_cli_checks_candidates_before_loading_a_model(tmp_path):
    """Wrong --candidates are refused before any data is read or model loaded."""
    runner = CliRunner()
    base = ["generate-calibrate", "--data", str(tmp_path / "absent.json"), "--out", str(tmp_path / "p.json")]
    r = runner.invoke(app, [*base, "--estimator", "msp", "--candidates", "msp,rauq"])
    assert r.exit_code != 0 and "--candidates is for --estimator auto" in str(r.exception)
    r = runner.invoke(app, [*base, "--estimator", "auto", "--candidates", "msp,nope"])
    assert r.exit_code != 0 and "unknown estimator 'nope'" in str(r.exception)
    r = runner.invoke(app, [*base, "--estimator", "auto", "--candidates", "msp,semantic_entropy", "--samples", "0"])
    assert r.exit_code != 0 and "'semantic_entropy' needs sampled answers" in str(r.exception)
    assert "semantic_entropy" not in default_candidates(0) and "p_true" not in default_candidates(8)
