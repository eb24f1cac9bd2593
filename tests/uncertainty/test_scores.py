import math
import warnings

import numpy as np
import pytest
from scipy.special import softmax

from caveat.errors import ConfigError
from caveat.uncertainty import SCORES, ArrayError, resolve_score_name
from caveat.uncertainty.scores import energy, entropy, least_confidence, margin, mutual_information, variance

PROB_SCORES = [n for n in SCORES.names() if SCORES.get(n).needs != "logits"]
LOGIT_SCORES = [n for n in SCORES.names() if SCORES.get(n).needs == "logits"]


def _inputs(name, logits):
    return {"logits": logits} if SCORES.get(name).needs == "logits" else {"probs": softmax(logits, axis=-1)}


def test_registry_declares_needs_and_citations():
    assert set(SCORES.names()) == {
        "least_confidence",
        "entropy",
        "margin",
        "max_logit",
        "energy",
        "mutual_information",
        "expected_entropy",
        "variance",
    }
    assert {SCORES.get(n).needs for n in SCORES.names()} == {"probs", "logits", "samples"}
    for name in SCORES.names():
        assert SCORES.get(name).cite and SCORES.get(name).fn.__doc__


@pytest.mark.parametrize("name", ["least_confidence", "entropy", "margin", "max_logit", "energy"])
def test_peaked_scores_lower_than_flat(name):
    logits = np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # (N=2, C=3): peaked, flat
    s = SCORES.get(name)(**_inputs(name, logits))
    assert s.shape == (2,) and s[0] < s[1]


@pytest.mark.parametrize("name", SCORES.names())
def test_n_c_equals_one_sample(name):
    logits = np.random.default_rng(0).normal(size=(5, 4))  # (N, C)
    flat = SCORES.get(name)(**_inputs(name, logits))
    stacked = SCORES.get(name)(**_inputs(name, logits[None]))  # (1, N, C)
    np.testing.assert_allclose(flat, stacked)
    assert flat.shape == (5,)


def test_closed_forms():
    uniform = np.full((1, 4), 0.25)
    np.testing.assert_allclose(entropy(uniform), [math.log(4)])
    np.testing.assert_allclose(least_confidence(uniform), [0.75])
    np.testing.assert_allclose(margin(np.array([[0.5, 0.3, 0.2]])), [0.8])
    # energy by hand: -log(e^1 + e^2 + e^3); with T = 2: -2 log(e^0.5 + e^1 + e^1.5)
    np.testing.assert_allclose(energy(np.array([[1.0, 2.0, 3.0]])), [-math.log(math.e + math.e**2 + math.e**3)])
    np.testing.assert_allclose(
        energy(np.array([[1.0, 2.0, 3.0]]), temperature=2.0),
        [-2 * math.log(math.exp(0.5) + math.exp(1.0) + math.exp(1.5))],
    )
    np.testing.assert_allclose(SCORES.get("max_logit")(logits=np.array([[1.0, 5.0, 2.0]])), [-5.0])


def test_sample_scores_zero_when_samples_agree():
    p = softmax(np.random.default_rng(1).normal(size=(6, 3)), axis=-1)  # (N, C)
    same = np.repeat(p[None], 4, axis=0)  # (M=4, N, C), all samples identical
    np.testing.assert_allclose(mutual_information(same), 0.0, atol=1e-12)
    np.testing.assert_allclose(variance(same), 0.0, atol=1e-15)
    np.testing.assert_allclose(SCORES.get("expected_entropy")(probs=same), entropy(same))


def test_disagreeing_samples_closed_form():
    # two confident samples that disagree: mean (0.5, 0.5) has entropy log 2, each sample has 0
    p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # (M=2, N=1, C=2)
    np.testing.assert_allclose(mutual_information(p), [math.log(2)])
    np.testing.assert_allclose(SCORES.get("expected_entropy")(probs=p), [0.0])
    np.testing.assert_allclose(variance(p), [0.25])  # var of {1, 0} is 0.25 for both classes
    assert entropy(p) == pytest.approx(mutual_information(p) + SCORES.get("expected_entropy")(probs=p))


def test_validation_messages():
    with pytest.raises(ArrayError, match="sum to 1.*softmax"):
        least_confidence(np.array([[2.0, 1.0]]))
    with pytest.raises(ArrayError, match=r"shape \(M, N, C\) or \(N, C\).*mask"):
        entropy(np.ones((2, 2, 2, 2)) / 2)
    with pytest.raises(ArrayError, match="at least 2 classes"):
        entropy(np.ones((3, 1)))
    with pytest.raises(ArrayError, match="NaN or inf"):
        energy(np.array([[np.nan, 1.0]]))
    with pytest.raises(ArrayError, match="'energy' needs logits"):
        SCORES.get("energy")(probs=np.array([[0.5, 0.5]]))
    with pytest.raises(ConfigError, match="temperature must be > 0; got 0"):
        energy(np.zeros((1, 2)), temperature=0)
    with pytest.raises(ConfigError, match="unknown uncertainty score 'bald'"):
        SCORES.get("bald")


def test_least_confidence_is_one_minus_the_top_probability():
    probs = softmax(np.random.default_rng(2).normal(size=(7, 5)), axis=-1)  # (N, C)
    assert "least_confidence" in SCORES.names() and "msp" not in SCORES.names()
    np.testing.assert_allclose(SCORES.get("least_confidence")(probs=probs), 1.0 - probs.max(axis=-1))
    samples = softmax(np.random.default_rng(3).normal(size=(4, 7, 5)), axis=-1)  # (M, N, C): of the mean
    np.testing.assert_allclose(least_confidence(samples), 1.0 - samples.mean(axis=0).max(axis=-1))


def test_the_old_name_msp_resolves_to_least_confidence_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="'msp' is now called 'least_confidence'; the old name will be removed"):
        assert resolve_score_name("msp") == "least_confidence"
    with pytest.warns(DeprecationWarning, match="'msp' is now called 'least_confidence'"):
        score = SCORES.get("msp")  # the registry itself takes the old name too
    assert score is SCORES.get("least_confidence")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # current names never warn
        assert resolve_score_name("least_confidence") == "least_confidence"
        assert resolve_score_name("entropy") == "entropy" and resolve_score_name("bald") == "bald"
