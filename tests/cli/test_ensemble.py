"""Deep ensembles: N members from the same loop with different seeds, stacked at prediction time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax
from typer.testing import CliRunner

import caveat
from caveat.calibration.run import calibrate_run
from caveat.cli.app import app
from caveat.data.load import load_data
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.uncertainty.methods.temperature import TemperatureScaling
from tests.conftest import tiny_overrides

runner = CliRunner()


def test_train_ensemble_predict_evaluate_and_calibrate(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "ens"
    sets = [x for o in tiny_overrides(tiny_backbone, text_data, epochs=1) for x in ("--set", o)]
    result = runner.invoke(
        app, ["train", "--out", str(run), "--no-progress", "--ensemble", "3", *sets], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    info = json.loads((run / "caveat.json").read_text())
    assert info["ensemble"] == {"members": ["members/1", "members/2"], "seeds": [13, 14, 15]}
    assert json.loads((run / "members" / "2" / "caveat.json").read_text())["config"]["seed"] == 15

    inputs = ["the alpha card", "beta now please", "my gamma order"]
    preds = caveat.predict(run, inputs, method="ensemble")
    assert preds.probs.shape == (3, 3, 3)  # (members, N, C)
    np.testing.assert_allclose(preds.probs[0], Predictor.from_run(run).predict(inputs).probs[0], atol=1e-6)
    np.testing.assert_allclose(
        preds.probs[2], Predictor.from_run(run / "members" / "2").predict(inputs).probs[0], atol=1e-6
    )
    assert not np.allclose(preds.probs[0], preds.probs[1])  # different seeds, different members

    metrics = json.loads(runner.invoke(app, ["evaluate", str(run), "--ensemble"]).stdout)
    assert metrics["ensemble"]["members"] == 3 and metrics["ensemble"]["samples"] == 3
    assert 0 <= metrics["ensemble"]["ece"] <= 1 and metrics["ensemble"]["cost_ratio"] > 0

    # calibrating the ensemble fits its own temperature on the pooled prediction (pool then calibrate); the
    # reference is computed here from the members' raw logits: log of the mean softmax, one T by NLL
    summary = calibrate_run(run)
    assert summary["ensemble"]["members"] == 3 and 0.05 < summary["ensemble"]["temperature"] < 20  # not a bound
    members = Predictor.from_run(run, calibrated=False).ensemble()
    splits, labels = load_data(open_run(run).config), open_run(run).labels

    def pooled(split):
        y = np.array([labels.index(ex.label) for ex in split.examples])
        raw = np.stack([m.predict([ex.text for ex in split.examples]).logits[0] for m in members])  # (M, N, C)
        return np.log(softmax(raw, axis=-1).mean(0)), y

    log_mean, y_cal = pooled(splits.calibration)
    expected = TemperatureScaling().fit(log_mean, y_cal).temperature
    assert summary["ensemble"]["temperature"] == pytest.approx(expected, rel=1e-4)
    assert summary["ensemble"]["nll_after"] <= summary["ensemble"]["nll_before"] + 1e-12
    # evaluate's ensemble method serves the calibrated pool: its NLL on test is that of softmax(log mean / T)
    log_mean, y_test = pooled(splits.test)
    q = softmax(log_mean / expected, axis=-1)
    after = json.loads(runner.invoke(app, ["evaluate", str(run), "--ensemble"]).stdout)
    assert after["methods"]["ensemble"]["nll"] == pytest.approx(-np.log(q[np.arange(len(y_test)), y_test]).mean(), 1e-3)
    assert after["methods"]["ensemble"]["nll"] != pytest.approx(metrics["methods"]["ensemble"]["nll"], 1e-3)  # raw


def test_ensemble_method_on_a_single_run_says_how(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "single"
    sets = [x for o in tiny_overrides(tiny_backbone, text_data, epochs=1) for x in ("--set", o)]
    assert runner.invoke(app, ["train", "--out", str(run), "--no-progress", *sets]).exit_code == 0
    with pytest.raises(ConfigError, match="--ensemble N"):
        caveat.predict(run, ["alpha"], method="ensemble")
