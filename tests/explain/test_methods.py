"""Every explanation method on trained tiny runs: the planted keyword ranks first, the explained
quantity equals what predict reports, costs are counted exactly, and explanations are repeatable."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.explain import METHODS, ExplainModel, explain
from caveat.explain.faithfulness import faithfulness, random_baseline

TEXT = "please the beta card now today"  # planted: beta -> second
# (not alpha: the tiny model gives an empty or all-[PAD] text to "first", so alpha barely moves it)
OPTIONS = {"ig": {"steps": 16}, "shap": {"max_evals": 200}, "lime": {"samples": 300}, "occlusion": {}}


@pytest.fixture(scope="module")
def text_model(uncalibrated_run) -> ExplainModel:
    """Temperature 1: the tiny calibrated run's fitted temperature sits at the 0.05 bound, which saturates
    every probability (the PAD baseline too) and leaves nothing to attribute."""
    return ExplainModel.from_run(uncalibrated_run)


@pytest.fixture(scope="module")
def ner_model(calibrated_ner_run) -> ExplainModel:
    return ExplainModel.from_run(calibrated_ner_run)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_ranks_the_planted_keyword_first(text_model, method):
    a = explain(text_model, TEXT, method=method, **OPTIONS[method])
    assert a.target["kind"] == "label" and a.target["label"] == "second" == a.target["predicted"]
    assert a.words == TEXT.split() and a.features.all()
    assert a.words[a.ranking()[0]] == "beta", a.top(3)
    assert a.top(1)[0][1] > 0
    assert a.value == pytest.approx(text_model.predictor.predict([TEXT]).probs[0, 0, 1], abs=1e-5)


def test_a_calibrated_run_explains_its_temperature_scaled_probability(served_run):
    model = ExplainModel.from_run(served_run)
    a = explain(model, TEXT, method="occlusion")
    z = model.predictor.predict([TEXT]).logits[0, 0] / model.temperature
    p = np.exp(z - z.max())
    assert model.calibrated and a.target["calibrated"] and a.target["temperature"] == model.temperature != 1
    assert a.value == pytest.approx(p[1] / p.sum(), abs=1e-6)


def test_costs_are_counted_exactly(text_model):
    f = len(TEXT.split())
    assert explain(text_model, TEXT, method="occlusion").evaluations == f + 1
    assert explain(text_model, TEXT, method="lime", samples=120).evaluations == 120
    assert explain(text_model, TEXT, method="ig", steps=10).evaluations == 12
    shap = explain(text_model, TEXT, method="shap", max_evals=40)
    assert 0 < shap.evaluations <= 40 + 2


def test_occlusion_is_the_drop_when_a_word_is_deleted(text_model):
    a = explain(text_model, TEXT, method="occlusion")
    words = TEXT.split()
    texts = [TEXT] + [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
    p = text_model.predictor.predict(texts).logits[0] / text_model.temperature
    p = np.exp(p - p.max(1, keepdims=True))
    second = p[:, 1] / p.sum(1)
    np.testing.assert_allclose(a.word_attributions, second[0] - second[1:], atol=1e-6)


def test_shap_values_add_up_to_the_explained_value(text_model):
    a = explain(text_model, TEXT, method="shap", max_evals=500)
    nothing = text_model.explained(TEXT).score(np.zeros((1, len(a.words)), dtype=bool))[0]
    assert a.details["base_value"] == pytest.approx(nothing, abs=1e-6)  # the empty text
    assert a.details["base_value"] + a.word_attributions.sum() == pytest.approx(a.value, abs=1e-6)


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_the_same_seed_gives_the_same_explanation(text_model, method):
    a, b = (explain(text_model, TEXT, method=method, seed=3, **OPTIONS[method]) for _ in range(2))
    np.testing.assert_array_equal(a.word_attributions, b.word_attributions)


def test_lime_seeds_differ_at_small_sample_sizes(text_model):
    a, b = (explain(text_model, TEXT, method="lime", samples=30, seed=s) for s in (0, 1))
    assert not np.array_equal(a.word_attributions, b.word_attributions)


def test_uncertainty_target_is_the_calibrated_entropy(text_model):
    text = "please the card now"  # no keyword: the model is unsure
    explained = text_model.explained(text, "uncertainty")
    logits = text_model.predictor.predict([text]).logits[0, 0] / text_model.temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert explained.value() == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-6)
    coarse, fine = (
        explain(text_model, "please the beta card now", method="ig", target="entropy", steps=s) for s in (16, 256)
    )  # entropy curves along the path: it needs more steps than a probability
    assert fine.target["score"] == "entropy" and abs(fine.details["delta"]) < abs(coarse.details["delta"])
    assert abs(fine.details["delta"]) < 0.02 * abs(fine.value - fine.details["baseline_value"]) + 1e-4
    mi = explain(text_model, text, method="occlusion", target="mutual_information")
    assert mi.target["samples"] == 20 and mi.value >= 0


def test_faithful_methods_beat_random_on_the_planted_model(text_model):
    explained = text_model.explained(TEXT)
    occ = explain(text_model, TEXT, method="occlusion")
    mine = faithfulness(explained.score, occ.word_attributions[occ.features])
    floor = random_baseline(explained.score, explained.n_features, draws=5)
    assert mine["comprehensiveness"] > floor["comprehensiveness"]
    assert mine["sufficiency"] < floor["sufficiency"]


@pytest.mark.parametrize("method", METHODS)
def test_a_span_is_explained_by_its_context_only(ner_model, method):
    words = "alice smith visited the house in paris today".split()
    a = explain(ner_model, words, method=method, span="paris", **OPTIONS[method])
    assert a.target["kind"] == "span" and a.target["label"] == "LOC" and a.target["span"] == "paris"
    assert not a.features[6] and a.features.sum() == len(words) - 1 and a.word_attributions[6] == 0
    preds = ner_model.predictor.predict([words])
    z = preds.logits[0, 0, 6] / ner_model.temperature
    p = np.exp(z - z.max())
    assert a.value == pytest.approx(p[ner_model.labels.index("B-LOC")] / p.sum(), abs=1e-5)
    if method == "ig":  # completeness with the span held fixed
        assert a.word_attributions.sum() == pytest.approx(
            a.value - a.details["baseline_value"], abs=0.02 * abs(a.value) + 1e-4
        )


def test_a_span_can_be_explained_as_another_type(ner_model):
    a = explain(ner_model, "alice smith visited paris", method="occlusion", span="alice smith", label="LOC")
    assert a.target["label"] == "LOC" and a.target["predicted"] == "PER" and a.value < 0.5


@pytest.mark.parametrize(
    "call, match",
    [
        (dict(text="alice visited paris", span="rome"), "span 'rome' is not in the sentence"),
        (dict(text="alice visited paris", span="visited"), "'visited' is not a predicted span"),
        (dict(text="alice visited paris"), "NER runs explain one span"),
        (dict(text="alice visited paris", span="paris", label="ORG"), "label 'ORG' is not an entity type"),
    ],
)
def test_bad_span_requests_say_what_to_change(ner_model, call, match):
    with pytest.raises(ConfigError, match=match):
        explain(ner_model, method="occlusion", **call)


def test_bad_requests_on_text_runs_say_what_to_change(text_model):
    with pytest.raises(ConfigError, match="unknown explanation method 'gradcam'"):
        explain(text_model, TEXT, method="gradcam")
    with pytest.raises(ConfigError, match="span is for NER runs; this run classifies whole texts \(use target\)"):
        explain(text_model, TEXT, span="alpha")
    with pytest.raises(ConfigError, match="max_evals must be an integer >= 2"):
        explain(text_model, TEXT, method="shap", max_evals=1)
