"""caveat.Model: the rows of Model.predict, `caveat predict` and POST /v1/predict are one; staged order; caveat.load
on every kind of run; the quickstart example runs."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import caveat
from caveat.cli.app import app
from caveat.errors import NotCalibratedError
from tests.conftest import one_thread, tiny_overrides
from tests.service.conftest import close, serving

TEXTS = ["the alpha card", "my beta parcel now", "please gamma", "house cat dog tree road"]
SENTENCES = [["alice", "visited", "paris"], ["bob", "went", "home", "today"]]


def cli_rows(run, inputs: list[str]) -> list[dict]:
    result = CliRunner().invoke(app, ["predict", str(run), *inputs, "--top-k", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if len(inputs) == 1:
        return [json.loads(result.stdout)]
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_text_rows_are_one_in_python_cli_and_service(served_run):
    model = caveat.load(served_run)
    python = json.loads(json.dumps(model.predict(TEXTS).to_records()))
    assert all({"decision", "prediction_set", "uncertainty", "reason"} <= set(row) for row in python)
    assert close(python, cli_rows(served_run, TEXTS))
    with serving(served_run) as client:
        served = client.post("/v1/predict", json={"texts": TEXTS, "k": len(model.labels)}).json()["predictions"]
    assert close(python, served)


def test_ner_rows_are_one_in_python_cli_and_service(calibrated_ner_run):
    model = caveat.load(calibrated_ner_run)
    python = json.loads(json.dumps(model.predict(SENTENCES).to_records()))
    assert any(span["decision"] in ("keep", "flag") for row in python for span in row["spans"])
    assert close(python, cli_rows(calibrated_ner_run, [" ".join(s) for s in SENTENCES]))
    with serving(calibrated_ner_run) as client:
        served = client.post("/v1/predict", json={"tokens": SENTENCES}).json()["predictions"]
    assert close(python, served)


def test_rows_read_as_attributes_and_arrays_stay_one_attribute_away(served_run):
    model = caveat.load(served_run)
    out = model.predict(TEXTS)
    records = out.to_records()
    assert len(out) == len(TEXTS) and out.probs.shape == (1, len(TEXTS), len(model.labels))
    for i, row in enumerate(out):
        assert (row.label, row.decision, row.reason, row.prediction_set) == (
            records[i]["label"],
            records[i]["decision"],
            records[i]["reason"],
            records[i]["prediction_set"],
        )
        # the arrays are the calibrated probabilities the row reports
        assert out.probs[0, i, model.labels.index(row.label)] == pytest.approx(row.probability, abs=1e-6)
    assert out[0].label == "first" and out.decisions == [r["decision"] for r in records]
    with pytest.raises(AttributeError, match="a row has no 'colour'"):
        _ = out[0].colour
    sampled = model.predict(TEXTS[:2], method="mc_dropout", samples=4)
    assert sampled.probs.shape == (4, 2, len(model.labels)) and sampled[0].mc_dropout["samples"] == 4


def test_an_uncalibrated_model_says_so_once_and_refuses_decisions(uncalibrated_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(uncalibrated_run, run)
    model = caveat.load(run)
    assert not model.calibrated and model.calibration is None
    with pytest.warns(UserWarning, match=r"not calibrated.*model\.calibrate\(\)"):
        out = model.predict(TEXTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not on every call
        model.predict(TEXTS[:1])
    assert out[0].label == "first" and "caveat calibrate" in out[0].reason
    with pytest.raises(NotCalibratedError, match=r"call model\.calibrate\(\) first"):
        _ = out[0].decision
    with pytest.raises(NotCalibratedError, match=r"call model\.calibrate\(\) first"):
        _ = out.decisions
    with pytest.raises(NotCalibratedError, match="not calibrated"):
        model.predictor.predict(TEXTS, calibrated=True)
    with one_thread():
        assert model.calibrate(target_risk=0.2, alpha=0.2) is model  # staged: returns the model
    assert model.calibrated and model.predict(TEXTS)[0].decision in ("answer", "abstain", "route")
    again = caveat.load(run)  # saved in the run directory
    assert again.calibrated and again.calibration.temperature == model.calibration.temperature


def test_load_opens_every_kind_of_run(served_run, uncalibrated_run, calibrated_ner_run, ner_run, tmp_path):
    assert caveat.load(served_run).calibrated and isinstance(caveat.load(served_run).calibration, caveat.Calibration)
    assert not caveat.load(uncalibrated_run).calibrated
    ner = caveat.load(calibrated_ner_run)
    assert ner.task is caveat.Task.TOKEN_CLASSIFICATION and isinstance(ner.calibration, caveat.SpanCalibration)
    assert not caveat.load(ner_run).calibrated
    # an ensemble: member 0 is the run itself, members/1 a second member
    ens = tmp_path / "ens"
    shutil.copytree(served_run, ens)
    shutil.copytree(uncalibrated_run, ens / "members" / "1")
    info = json.loads((ens / "caveat.json").read_text())
    info["ensemble"] = {"members": ["members/1"], "seeds": [0, 1]}
    (ens / "caveat.json").write_text(json.dumps(info))
    model = caveat.load(ens)
    out = model.predict(TEXTS, method="ensemble")
    assert out.probs.shape == (2, len(TEXTS), len(model.labels)) and out[0].decision in ("answer", "abstain", "route")
    np.testing.assert_allclose(out.probs[0], out.probs[1], atol=1e-6)  # the same weights twice
    with pytest.raises(caveat.RunDirError, match="is not a caveat run"):
        caveat.load(tmp_path / "nowhere")


def test_module_functions_are_aliases_of_the_model(served_run):
    model = caveat.load(served_run)
    assert caveat.predict(served_run, TEXTS).to_records() == model.predict(TEXTS).to_records()
    a, b = caveat.evaluate(served_run, "test", write=False), model.evaluate("test", write=False)
    timed = ("methods",)  # cost ratios are wall times
    assert {k: v for k, v in a.items() if k not in timed} == {k: v for k, v in b.items() if k not in timed}


def test_explain_and_report_through_the_model(served_run, tmp_path):
    model = caveat.load(served_run)
    a = model.explain("please gamma now", method="occlusion", target="uncertainty")
    assert a.target["calibrated"] is True and a.target["temperature"] == model.calibration.temperature
    assert [w["word"] for w in a.to_dict()["words"]] == ["please", "gamma", "now"]
    path = model.report("test", out=tmp_path / "report.html")
    assert path.is_file() and "caveat report" in path.read_text()


def test_quickstart_runs(tiny_backbone, tmp_path, capsys):
    from examples.quickstart import main

    overrides = [o for o in tiny_overrides(tiny_backbone, tmp_path, epochs=2) if o.startswith(("model.", "train."))]
    with one_thread():
        model = main(["--out", str(tmp_path / "quick"), *(x for o in overrides for x in ("--set", o))])
    printed = capsys.readouterr().out
    assert model.calibrated and (tmp_path / "quick" / "report.html").is_file()
    assert "arrays one attribute away: (1, 2," in printed and "report:" in printed


def test_bad_predict_requests_say_what_to_change(served_run, ner_run):
    model = caveat.load(served_run)
    with pytest.raises(caveat.ConfigError, match="got one string 'the alpha card': wrap it in a list"):
        model.predict("the alpha card")
    with pytest.raises(caveat.ConfigError, match="method='beam' is not available; choose one of: deterministic"):
        model.predict(TEXTS, method="beam")
    with pytest.raises(caveat.ConfigError, match=r"samples must be an integer >= 2 \(MC dropout passes\). Got 1"):
        model.predict(TEXTS, method="mc_dropout", samples=1)
    with pytest.raises(caveat.ConfigError, match=r"top_k must be an integer >= 0 \(0 = all labels\). Got -1"):
        model.predict(TEXTS, top_k=-1)
    with pytest.raises(caveat.ConfigError, match="method='mc_dropout' is for text-classification runs so far"):
        caveat.load(ner_run).predict(SENTENCES, method="mc_dropout")
