"""The policy: which trigger answers, abstains or routes, and the reason it gives."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.decide import ConformalClassifier, Decision, Policy, RiskControlled
from caveat.errors import ConfigError, DataError, NotCalibratedError


def fitted_conformal(quantile: float, n_classes: int = 3) -> ConformalClassifier:
    """A LAC classifier with a known quantile (as if loaded from caveat.json)."""
    state = ConformalClassifier("lac", 0.1).state() | {"quantiles": [quantile] * n_classes}
    return ConformalClassifier.from_state(state)


def fitted_risk(threshold: float | None) -> RiskControlled:
    """A calibrated risk threshold (None: no threshold met the target, abstain on all)."""
    state = RiskControlled(0.02, 0.05, score="least_confidence").state() | {"calibrated": True, "threshold": threshold}
    return RiskControlled.from_state(state)


PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # confident: answer
        [0.45, 0.45, 0.10],  # two plausible labels, least_confidence 0.55
        [0.59, 0.21, 0.20],  # uncertain (least_confidence 0.41) but a single label in the set
        [0.34, 0.33, 0.33],  # nothing passes LAC at 0.6 -> empty set
    ]
)
LEAST_CONFIDENCE = 1 - PROBS.max(axis=1)  # (4,) higher = more uncertain


def test_each_trigger_maps_to_its_action_with_a_reason():
    policy = Policy(conformal=fitted_conformal(0.6), risk=fitted_risk(0.27), max_set_size=1, route_on=("set_size",))
    d = policy.decide(PROBS, uncertainty=LEAST_CONFIDENCE)
    assert isinstance(d, Decision) and len(d) == 4
    assert d.action.tolist() == ["answer", "route", "abstain", "abstain"]
    assert d.labels.tolist() == [0, 0, 0, 0]
    assert d.prediction_set.tolist() == [[True, False, False], [True, True, False], [True, False, False], [False] * 3]
    assert d.reason[0] == "least_confidence 0.1 ≤ threshold 0.27; 90% prediction set has 1 ≤ 1 labels"
    # a route trigger outranks an abstain trigger, and both are named
    assert d.reason[1].startswith("90% prediction set has 2 labels > 1; least_confidence 0.55 > threshold 0.27")
    assert d.reason[2] == "least_confidence 0.41 > threshold 0.27 (risk ≤ 2% at 95% confidence)"
    assert "empty 90% prediction set" in d.reason[3]
    assert d.counts() == {"answer": 1, "abstain": 2, "route": 1}
    np.testing.assert_array_equal(d.answered, [True, False, False, False])


def test_ood_and_disagreement_use_their_own_thresholds():
    policy = Policy(ood_threshold=2.5, disagreement_threshold=0.3, route_on=("disagreement",), ood_name="mahalanobis")
    d = policy.decide(PROBS, ood=[0.0, 3.2, 0.0, 3.0], disagreement=[0.1, 0.1, 0.5, 0.5])
    assert d.action.tolist() == ["answer", "abstain", "route", "route"]
    assert d.reason[1] == "mahalanobis 3.2 > threshold 2.5"
    assert d.reason[3] == "disagreement 0.5 > threshold 0.3; mahalanobis 3 > threshold 2.5"
    # without conformal the set is the top label alone
    np.testing.assert_array_equal(d.prediction_set.sum(axis=1), [1, 1, 1, 1])


def test_samples_are_averaged_and_no_checks_answers_everything():
    samples = np.stack([PROBS, PROBS[:, [1, 0, 2]]])  # (2, 4, 3)
    d = Policy().decide(samples)
    assert d.action.tolist() == ["answer"] * 4 and d.reason == ["no checks configured"] * 4
    assert d.labels.tolist() == [0, 0, 0, 0]  # ties in the mean go to the first class


def test_abstain_on_all_when_no_threshold_met():
    d = Policy(risk=fitted_risk(None)).decide(PROBS, uncertainty=LEAST_CONFIDENCE)
    assert d.action.tolist() == ["abstain"] * 4
    assert d.reason[0].startswith("no least_confidence threshold meets risk ≤ 2% at 95% confidence")


def test_uncalibrated_parts_say_what_to_call():
    with pytest.raises(NotCalibratedError, match=r"calibrate\(scores, errors\)"):
        Policy(risk=RiskControlled()).decide(PROBS, uncertainty=LEAST_CONFIDENCE)
    with pytest.raises(NotCalibratedError, match=r"calibrate\(probs, labels\)"):
        Policy(conformal=ConformalClassifier()).decide(PROBS)


def test_missing_or_unexpected_scores_are_named():
    with pytest.raises(
        DataError, match=r"checks uncertainty scores but none were passed: call decide\(probs, uncertainty=...\)"
    ):
        Policy(risk=fitted_risk(0.3)).decide(PROBS)
    with pytest.raises(
        ConfigError, match=r"got ood scores but the Policy has no check for them: pass Policy\(ood_threshold=...\)"
    ):
        Policy().decide(PROBS, ood=[0, 0, 0, 0])
    with pytest.raises(DataError, match=r"disagreement must have shape \(4,\)"):
        Policy(disagreement_threshold=0.2).decide(PROBS, disagreement=[0.1])


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="unknown trigger\\(s\\) in route_on: 'size'; choose from risk, ood"):
        Policy(route_on=("size",))
    with pytest.raises(ConfigError, match="max_set_size needs prediction sets: pass conformal="):
        Policy(max_set_size=2)
    with pytest.raises(ConfigError, match="max_set_size must be an integer >= 1"):
        Policy(conformal=fitted_conformal(0.5), max_set_size=0)
    with pytest.raises(ConfigError, match="ood_threshold must be a finite number or None; got nan"):
        Policy(ood_threshold=float("nan"))
    with pytest.raises(ConfigError, match="risk must be a RiskControlled or None; got float"):
        Policy(risk=0.3)
