"""``target='uncertainty'`` under integrated gradients explains the least confidence ``1 - p(ĉ)`` of the label
predicted for the whole input (``integrated_gradients.py`` says why not the entropy): completeness holds, the
planted keywords get the signs they must, and the one-line summary names the top words in order.

The planted run (tests/conftest.py: alpha/beta/gamma -> first/second/third) is read at temperature 1
(``uncalibrated_run``, the weights of ``served_run``): the served run's fitted temperature sits at the 0.05
bound, which turns every probability along the path into a step that no Riemann sum integrates.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.explain import ExplainModel, explain
from caveat.explain.base import Attribution

KEYWORD = {"first": "alpha", "second": "beta", "third": "gamma"}
CONFLICTS = ["alpha beta now please", "my gamma card alpha", "beta the gamma parcel"]  # evidence both ways


@pytest.fixture(scope="module")
def model(uncalibrated_run) -> ExplainModel:
    return ExplainModel.from_run(uncalibrated_run)


def pad_baseline_probs(model: ExplainModel, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities of ``text`` and of its all-[PAD] baseline (special tokens kept), computed here
    without caveat.explain."""
    p = model.predictor
    enc = p.tokenizer(text, return_special_tokens_mask=True)
    ids = torch.tensor([enc["input_ids"]])  # (1, T)
    special = torch.tensor([enc["special_tokens_mask"]]).bool()
    base = torch.where(special, ids, torch.full_like(ids, p.tokenizer.pad_token_id))  # (1, T)
    with torch.no_grad():
        logits = p.model(input_ids=torch.cat([ids, base]), attention_mask=torch.ones(2, ids.shape[1])).logits
    probs = torch.softmax(logits.double(), -1).numpy()  # (2, C)
    return probs[0], probs[1]


@pytest.mark.parametrize("text", CONFLICTS)
def test_ig_explains_the_least_confidence_and_its_attributions_sum_to_the_gap(model, text):
    a = explain(model, text, method="ig", target="uncertainty", steps=64)
    x, b = pad_baseline_probs(model, text)
    c = int(x.argmax())
    assert a.target["score"] == "least_confidence" and a.target["label"] == model.labels[c] == a.target["predicted"]
    assert a.value == pytest.approx(1 - x[c], abs=1e-6)
    assert a.details["baseline_value"] == pytest.approx(1 - b[c], abs=1e-6)
    gap = a.value - a.details["baseline_value"]
    assert abs(gap) > 0.1  # something to explain
    tol = 0.01 * abs(gap) + 1e-4
    assert abs(a.word_attributions.sum() - gap) <= tol and abs(a.details["delta"]) <= tol  # completeness


@pytest.mark.parametrize("text", CONFLICTS)
def test_words_for_the_prediction_lower_the_uncertainty_and_words_for_a_rival_raise_it(model, text):
    a = explain(model, text, method="ig", target="uncertainty", steps=64)
    mine = KEYWORD[a.target["label"]]
    (rival,) = [w for w in a.words if w in KEYWORD.values() and w != mine]
    attribution = dict(zip(a.words, a.word_attributions))
    assert attribution[mine] < 0 < attribution[rival], a.summary()
    assert a.words[a.ranking()[-1]] == mine and a.words[a.ranking()[0]] == rival  # and they are the extremes
    assert (a.word_attributions > 0).any() and (a.word_attributions < 0).any()  # not all of one sign


def test_deletion_methods_keep_the_entropy_and_any_method_explains_the_least_confidence_by_name(model):
    text = CONFLICTS[0]
    assert explain(model, text, method="occlusion", target="uncertainty").target["score"] == "entropy"
    assert explain(model, text, method="ig", target="entropy", steps=8).target["score"] == "entropy"
    by_name = explain(model, text, method="occlusion", target="least_confidence")
    ig = explain(model, text, method="ig", target="uncertainty", steps=8)
    assert by_name.target == ig.target and by_name.value == pytest.approx(ig.value, abs=1e-6)


def test_an_unknown_uncertainty_score_is_named(model):
    with pytest.raises(ValueError, match=r"uncertainty='variance' is not an uncertainty score; use one of entropy"):
        model.explained("alpha", "uncertainty", uncertainty="variance")


def hand_made(attributions, features=None, kind="uncertainty") -> Attribution:
    words = list("abcdef")[: len(attributions)]
    return Attribution(
        method="ig",
        words=words,
        word_attributions=np.array(attributions, dtype=float),
        features=np.ones(len(words), dtype=bool) if features is None else np.array(features),
        target={"kind": kind, "name": "f"},
        value=0.25,
        evaluations=1,
        seconds=0.0,
    )


def test_the_summary_names_the_strongest_words_of_each_side_in_order():
    a = hand_made([0.1, -0.3, 0.0, 0.5, -0.05, 0.2])
    assert a.summary(k=2) == (
        "ig: f = 0.25; most uncertainty from: 'd' (+0.5), 'f' (+0.2); most certainty from: 'b' (-0.3), 'e' (-0.05)"
    )
    assert hand_made([0.1, -0.3], kind="label").summary() == "ig: f = 0.25; for it: 'a' (+0.1); against it: 'b' (-0.3)"
    held = hand_made([0.0, 0.4, 0.1], features=[True, False, True])  # a held-fixed word is never named
    assert held.summary() == "ig: f = 0.25; most uncertainty from: 'c' (+0.1); most certainty from: none"
    with pytest.raises(ValueError, match="k must be >= 1"):
        a.summary(k=0)


def named(side: str, summary: str) -> list[tuple[str, float]]:
    """The (word, attribution) pairs a summary lists after ``side:``."""
    part = summary.split(f"{side}: ")[1].split(";")[0]
    return [(w, float(v)) for w, v in re.findall(r"'([^']*)' \(([-+][^)]*)\)", part)]


def test_the_cli_prints_the_summary_on_stderr_and_in_the_json(served_run):
    import json

    text = CONFLICTS[0]
    result = CliRunner().invoke(
        app, ["explain", str(served_run), text, "--method", "ig", "--target", "uncertainty", "--steps", "16"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["summary"] in result.stderr.splitlines()
    assert out["summary"].startswith("ig: 1 - calibrated probability of the predicted label")
    attributions = {w["word"]: w["attribution"] for w in out["words"]}
    ups, downs = named("most uncertainty from", out["summary"]), named("most certainty from", out["summary"])
    want_up = sorted((w for w in attributions if attributions[w] > 0), key=lambda w: -attributions[w])[:3]
    want_down = sorted((w for w in attributions if attributions[w] < 0), key=lambda w: attributions[w])[:3]
    assert [w for w, _ in ups] == want_up and [w for w, _ in downs] == want_down
    for w, v in ups + downs:
        assert v == pytest.approx(attributions[w], rel=1e-2)
