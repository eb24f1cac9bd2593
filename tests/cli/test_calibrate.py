"""caveat calibrate fits on the calibration split; predict then carries the caveats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from caveat.calibration.run import calibrate_run
from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides

runner = CliRunner()


def test_calibrate_then_predict_with_decisions(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data)), run, progress=False).fit()
    result = runner.invoke(
        app, ["calibrate", str(run), "--target-risk", "0.2", "--alpha", "0.2"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fitted_on"] == "calibration" and summary["n"] == 30  # half of the 60 validation texts
    assert summary["temperature"] > 0 and summary["nll_after"] <= summary["nll_before"] + 1e-9
    assert json.loads((run / "caveat.json").read_text())["calibration"]["conformal"]["quantiles"]
    assert (run / "calibration.safetensors").is_file()

    row = json.loads(runner.invoke(app, ["predict", str(run), "the alpha card"]).stdout)
    assert row["label"] == "first"
    assert set(row["uncertainty"]) == {"msp", "entropy", "energy", "mahalanobis"}
    assert row["decision"] in {"answer", "abstain", "route"} and isinstance(row["reason"], str)
    assert "first" in row["prediction_set"]
    assert abs(sum(row["probabilities"].values()) - 1) < 1e-5  # 3 labels, top-5: all of them

    oos = tmp_path / "oos.txt"
    oos.write_text("zebra xylophone quartz\nwhat is the capital of peru\nqqq vvv www\n")
    metrics = json.loads(
        runner.invoke(app, ["evaluate", str(run), "--data", "test", "--ood", str(oos), "--mc-samples", "4"]).stdout
    )
    mc = metrics["mc_dropout"]
    assert mc["samples"] == 4 and mc["cost_ratio"] > 0 and 0 <= mc["ece"] <= 1
    assert set(mc["ood"][str(oos)]) == {"msp", "entropy", "mutual_information", "variance"}
    assert 0 <= metrics["ece"] <= 1 and metrics["calibrated"]["temperature"] == summary["temperature"]
    assert 0 <= metrics["conformal"]["coverage"] <= 1 and metrics["conformal"]["set_size"] > 0  # LAC sets may be empty
    assert set(metrics["ood"][str(oos)]) == {"msp", "entropy", "energy", "mahalanobis"}
    decisions = metrics["decisions"][str(oos)]
    assert sum(decisions[a] for a in ("answer", "abstain", "route")) == 3

    # methods side by side: the same figures as the top level where they coincide, and a cost each
    result = runner.invoke(
        app, ["evaluate", str(run), "--ood", str(oos), "--methods", "msp,mahalanobis,laplace,mc_dropout"]
    )
    assert result.exit_code == 0, result.output
    side = json.loads(result.stdout)
    rows = side["methods"]
    assert list(rows) == ["msp", "mahalanobis", "laplace", "mc_dropout"]
    for name in ("msp", "mahalanobis"):
        assert rows[name]["ood_auroc"][str(oos)] == side["ood"][str(oos)][name]["auroc"]
    assert side["ood_auroc"][str(oos)] == rows["msp"]["ood_auroc"][str(oos)]  # calibrated default: msp
    assert rows["msp"]["ece"] == side["calibrated"]["ece"]
    assert all(r["cost_ratio"] >= 1 for n, r in rows.items() if n != "mc_dropout")  # the pass + their arithmetic
    assert side["mc_dropout"]["samples"] == 10 and rows["mc_dropout"]["score"] == "entropy"
    assert rows["laplace"]["score"] == "entropy" and 0 <= rows["laplace"]["ece"] <= 1
    assert set(json.loads(runner.invoke(app, ["evaluate", str(run)]).stdout)["methods"]) == {
        "msp",
        "entropy",
        "margin",
        "max_logit",
        "energy",
        "mahalanobis",
        "laplace",
    }
    result = runner.invoke(app, ["evaluate", str(run), "--methods", "msp,bogus"])
    assert result.exit_code != 0 and "unknown uncertainty method 'bogus'" in str(result.exception)
    table = runner.invoke(app, ["evaluate", str(run), "--ood", str(oos), "--format", "table"])
    assert table.exit_code == 0 and "uncertainty methods" in table.stdout


def test_ood_threshold_keeps_the_asked_share_of_in_scope_inputs(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=2)), run, progress=False).fit()
    summary = calibrate_run(run, target_risk=0.3, alpha=0.2, ood_tpr=0.9)
    from caveat.calibration import Calibration
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    opened = open_run(run)
    cal_texts = [json.loads(line)["text"] for line in (text_data / "validation.jsonl").read_text().splitlines()]
    rows = Calibration.from_run(opened).judge(Predictor.from_run(opened).predict(cal_texts))
    kept = np.mean([r["uncertainty"]["mahalanobis"] <= summary["ood"]["threshold"] for r in rows])
    assert 0.75 <= kept <= 1.0  # 90% of the validation half by construction; the calibration half is similar
    assert summary["ood"]["fitted_on"] == "validation"  # fixed before the risk threshold is chosen on calibration

    # out-of-scope calibration texts: the bound then covers a stated share of out-of-scope traffic
    oos = tmp_path / "oos.txt"
    oos.write_text("".join(f"zebra {w} quartz\n" for w in "abcdefghijklmnopqrst"))
    summary = calibrate_run(run, target_risk=0.45, delta=0.2, alpha=0.2, ood=[str(oos)], ood_rate=0.1)
    assert summary["risk"]["ood_rate"] == 0.1 and summary["risk"]["n_ood_calibration"] == 20
    assert summary["risk_ood_calibration"] == {"sets": [str(oos)], "n": 20}
    default = calibrate_run(run, target_risk=0.45, delta=0.2, alpha=0.2, ood=[str(oos)])
    assert default["risk"]["ood_rate"] == 20 / (20 + 30)  # their share in the calibration data
    with pytest.raises(ConfigError, match="ood_rate=0.1 needs out-of-scope calibration texts"):
        calibrate_run(run, ood_rate=0.1)


def test_a_target_that_cannot_be_certified_is_said_in_words(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data)), run, progress=False).fit()
    result = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.001"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    risk = json.loads(result.stdout)["risk"]
    assert risk["threshold"] is None and risk["advice"] is not None  # abstains on all, and says what can be met
    assert result.stderr.strip() == "warning: " + risk["summary"]
    assert "every input is abstained on" in risk["summary"] and "30 calibration examples" in risk["summary"]
    ok = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.5"], catch_exceptions=False)
    assert ok.stderr.strip().startswith("answers ") and "risk ≤ 50% at 95% confidence" in ok.stderr
