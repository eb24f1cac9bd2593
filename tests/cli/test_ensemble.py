"""Deep ensembles: N members from the same loop with different seeds, stacked at prediction time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax
from typer.testing import CliRunner

import caveat
from caveat.calibration.fit_text import mixed_split_members
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
    # one data split for every member (calibration is carved from validation here): no member stops early on, or
    # trains on, member 0's calibration examples
    calibration = [ex.text for ex in load_data(open_run(run).config).calibration.examples]
    for member in ("members/1", "members/2"):
        assert [ex.text for ex in load_data(open_run(run / member).config).calibration.examples] == calibration
    assert mixed_split_members(open_run(run)) == []

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
    test = load_data(open_run(run).config).test  # the ensemble's own accuracy: its mean prediction's
    texts, gold = [ex.text for ex in test.examples], [ex.label for ex in test.examples]
    mean = caveat.predict(run, texts, method="ensemble").probs.mean(0)
    expected = np.mean([open_run(run).labels[k] == g for k, g in zip(mean.argmax(-1), gold)])
    assert metrics["ensemble"]["accuracy"] == pytest.approx(expected)

    # calibrating the ensemble pools its members (mean probability or mean log-probability, whichever has the lower
    # NLL after its own temperature) and fits one temperature to the pool (pool then calibrate); the reference is
    # computed here from the members' raw logits
    summary = calibrate_run(run)
    ens = summary["ensemble"]
    assert ens["members"] == 3 and 0.05 < ens["temperature"] < 20  # not a bound
    members = Predictor.from_run(run, calibrated=False).ensemble()
    splits, labels = load_data(open_run(run).config), open_run(run).labels

    def member_logits(split):
        y = np.array([labels.index(ex.label) for ex in split.examples])
        return np.stack([m.predict([ex.text for ex in split.examples]).logits[0] for m in members]), y  # (M, N, C)

    def pooled(raw, how):
        p = softmax(raw, axis=-1)
        return np.log(p.mean(0)) if how == "probability" else np.log(softmax(np.log(p).mean(0), axis=-1))

    def nll(logits, y, t):
        q = softmax(logits / t, axis=-1)
        return -np.log(q[np.arange(len(y)), y]).mean()

    raw_cal, y_cal = member_logits(splits.calibration)
    hows = ("probability", "logit")
    fitted = {how: TemperatureScaling().fit(pooled(raw_cal, how), y_cal).temperature for how in hows}
    losses = {how: nll(pooled(raw_cal, how), y_cal, t) for how, t in fitted.items()}
    assert ens["pooling"] == min(losses, key=losses.get)
    assert ens["nll_by_pooling"] == pytest.approx(losses, rel=1e-4)
    assert ens["temperature"] == pytest.approx(fitted[ens["pooling"]], rel=1e-4)
    assert ens["nll_after"] <= ens["nll_before"] + 1e-12
    # evaluate's ensemble method serves the calibrated pool: its NLL on test is that of softmax(pool / T)
    raw_test, y_test = member_logits(splits.test)
    after = json.loads(runner.invoke(app, ["evaluate", str(run), "--methods", "ensemble,ensemble_knn"]).stdout)
    expected = nll(pooled(raw_test, ens["pooling"]), y_test, ens["temperature"])
    assert after["methods"]["ensemble"]["nll"] == pytest.approx(expected, 1e-3)
    assert after["methods"]["ensemble"]["nll"] != pytest.approx(metrics["methods"]["ensemble"]["nll"], 1e-3)  # raw
    assert after["methods"]["ensemble_knn"]["nll"] == after["methods"]["ensemble"]["nll"]  # same probabilities

    # ensemble_knn: each member's cosine distance to its nearest training feature (banks of the members' own
    # training features), averaged over the members; recomputed here from the members' features by brute force
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    train, test = [ex.text for ex in splits.train.examples], [ex.text for ex in splits.test.examples]
    distances = [1 - (unit(m.predict(test).features) @ unit(m.predict(train).features).T).max(axis=1) for m in members]
    score = np.mean(distances, axis=0)
    caveats = Predictor.from_run(run).calibration
    assert len(caveats.ensemble_knn) == 2  # members 1 and 2; member 0's bank is caveats.knn
    got = caveats.ensemble_knn_score([m.predict(test).features for m in members])
    np.testing.assert_allclose(got, score, atol=2e-3)  # banks are stored in half precision
    assert not np.allclose(got, distances[0], atol=2e-3)  # not member 0's distance alone

    # an ensemble trained before members shared one split (a member carved with its own seed) is named, and
    # calibrating it warns that its calibration is optimistic
    path = run / "members" / "2" / "caveat.json"
    info = json.loads(path.read_text())
    info["config"]["data"]["split_seed"] = None  # carves with its own seed, 15
    path.write_text(json.dumps(info))
    assert mixed_split_members(open_run(run)) == ["members/2"]


def test_ensemble_method_on_a_single_run_says_how(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "single"
    sets = [x for o in tiny_overrides(tiny_backbone, text_data, epochs=1) for x in ("--set", o)]
    assert runner.invoke(app, ["train", "--out", str(run), "--no-progress", *sets]).exit_code == 0
    with pytest.raises(ConfigError, match="--ensemble N"):
        caveat.predict(run, ["alpha"], method="ensemble")
