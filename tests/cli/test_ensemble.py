"""Deep ensembles: N members from the same loop with different seeds, stacked at prediction time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import caveat
from caveat.cli.app import app
from caveat.errors import ConfigError
from caveat.inference import Predictor
from tests.conftest import tiny_overrides

runner = CliRunner()


def test_train_ensemble_predict_and_evaluate(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "ens"
    sets = [x for o in tiny_overrides(tiny_backbone, text_data, epochs=4) for x in ("--set", o)]
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


def test_ensemble_method_on_a_single_run_says_how(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "single"
    sets = [x for o in tiny_overrides(tiny_backbone, text_data, epochs=1) for x in ("--set", o)]
    assert runner.invoke(app, ["train", "--out", str(run), "--no-progress", *sets]).exit_code == 0
    with pytest.raises(ConfigError, match="--ensemble N"):
        caveat.predict(run, ["alpha"], method="ensemble")
