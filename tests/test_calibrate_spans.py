"""NER span calibration: word temperature, span confidence, the kept-span threshold, and its use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.calibration import Calibration, SpanCalibration
from caveat.calibration.run import calibrate_run
from caveat.calibration.spans import span_scores
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_span_confidence_is_the_product_of_calibrated_word_probabilities():
    z = np.log(
        np.array(
            [
                [0.1, 0.8, 0.05, 0.03, 0.02],  # B-PER
                [0.2, 0.05, 0.7, 0.03, 0.02],  # I-PER
                [0.9, 0.02, 0.02, 0.03, 0.03],
            ]
        )
    )  # O
    spans, conf, right = span_scores([z, z[2:]], 1.0, LABELS, "product", gold=[("B-PER", "I-PER", "O"), ("O",)])
    assert spans[0] == [(0, 2, "PER", pytest.approx(0.8 * 0.7))] and spans[1] == []
    assert conf == pytest.approx([0.56]) and right.tolist() == [True]
    _, hot, _ = span_scores([z], 2.0, LABELS, "min")  # a temperature > 1 softens every word
    p = np.exp(z / 2) / np.exp(z / 2).sum(-1, keepdims=True)
    assert hot == pytest.approx([min(p[0, 1], p[1, 2])])
    _, _, wrong = span_scores([z], 1.0, LABELS, "mean", gold=[("B-LOC", "I-LOC", "O")])
    assert wrong.tolist() == [False]  # boundaries right, type wrong: a wrong span
    with pytest.raises(ConfigError, match="span aggregate 'median' is not available"):
        span_scores([z], 1.0, LABELS, "median")


def test_calibrate_a_ner_run_then_keep_or_flag_spans(tiny_backbone, ner_data, tmp_path):
    run = tmp_path / "ner"
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, ner_data, task="token-classification")), run, progress=False
    ).fit()
    with pytest.raises(ConfigError, match="ood / ood_rate are for text-classification runs"):
        calibrate_run(run, ood=["x.txt"])
    summary = calibrate_run(run, target_risk=0.2, delta=0.1)
    assert summary["task"] == "token-classification" and summary["n"] == 20  # half of the 40 validation sentences
    assert summary["n_spans"] > 0 and summary["temperature"] > 0 and 0 <= summary["span_ece_after"] <= 1
    assert json.loads((run / "caveat.json").read_text())["calibration"]["aggregate"] == "product"

    opened = open_run(run)
    assert Calibration.from_run(opened) is None  # the text-classification caveats do not apply
    caveats = SpanCalibration.from_run(opened)
    sentences = [["Maria", "visited", "Berlin", "today"], ["nothing", "here"]]
    rows = caveats.spans(Predictor.from_run(opened).predict(sentences), [4, 2])
    assert len(rows) == 2
    threshold = caveats.risk.threshold
    for span in (s for row in rows for s in row):
        assert span["decision"] == ("keep" if 1 - span["confidence"] <= threshold else "flag")
        assert "confidence" in span["reason"]

    from typer.testing import CliRunner

    from caveat.cli.app import app

    row = json.loads(CliRunner().invoke(app, ["predict", str(run), "alice smith went to paris"]).stdout)
    assert row["spans"]  # the planted names
    for span in row["spans"]:  # the CLI carries the same keep/flag judgement as the service
        assert span["decision"] in ("keep", "flag") and "confidence" in span["reason"]

    metrics = evaluate_run(run, "test", write=False)
    assert metrics["calibrated"]["n_spans"] == metrics["spans"]["n_spans"]
    assert 0 <= metrics["abstention"]["coverage"] <= 1 and metrics["abstention"]["guarantee"] == caveats.risk.guarantee
