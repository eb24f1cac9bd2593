"""caveat calibrate fits on the calibration split; predict then carries the caveats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors as SkNeighbours
from typer.testing import CliRunner

from caveat.calibration.run import calibrate_run
from caveat.cli.app import app
from caveat.config import load_config
from caveat.data.load import load_data
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides

runner = CliRunner()


def test_calibrate_then_predict_with_decisions(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data)), run, progress=False).fit()
    result = runner.invoke(
        app, ["calibrate", str(run), "--target-risk", "0.2", "--level", "0.8"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fitted_on"] == "calibration" and summary["n"] == 30  # half of the 60 validation texts
    assert summary["temperature"] > 0 and summary["nll_after"] <= summary["nll_before"] + 1e-9
    assert json.loads((run / "caveat.json").read_text())["calibration"]["conformal"]["quantiles"]
    assert (run / "calibration.safetensors").is_file()

    row = json.loads(runner.invoke(app, ["predict", str(run), "the alpha card"]).stdout)
    assert row["label"] == "first"
    assert set(row["uncertainty"]) == {"least_confidence", "entropy", "energy", "mahalanobis", "knn"}
    # knn: 1 - cosine to the nearest training feature (Sun et al. 2022), against scikit-learn on the run's features
    predictor = Predictor.from_run(run)
    train = predictor.predict([ex.text for ex in load_data(open_run(run).config).train.examples]).features
    query = predictor.predict(["the alpha card"]).features
    nearest = SkNeighbours(n_neighbors=1, metric="cosine").fit(train).kneighbors(query)[0][0, 0]
    assert row["uncertainty"]["knn"] == pytest.approx(nearest, abs=2e-3)  # the bank is kept in half precision
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
    assert set(mc["ood"][str(oos)]) == {"least_confidence", "entropy", "mutual_information", "variance"}
    assert 0 <= metrics["ece"] <= 1 and metrics["calibrated"]["temperature"] == summary["temperature"]
    assert 0 <= metrics["conformal"]["coverage"] <= 1 and metrics["conformal"]["set_size"] > 0  # LAC sets may be empty
    assert set(metrics["ood"][str(oos)]) == {"least_confidence", "entropy", "energy", "mahalanobis", "knn"}
    decisions = metrics["decisions"][str(oos)]
    assert sum(decisions[a] for a in ("answer", "abstain", "route")) == 3

    # methods side by side: the same figures as the top level where they coincide, and a cost each
    result = runner.invoke(
        app,
        ["evaluate", str(run), "--ood", str(oos), "--methods", "least_confidence,mahalanobis,knn,laplace,mc_dropout"],
    )
    assert result.exit_code == 0, result.output
    side = json.loads(result.stdout)
    rows = side["methods"]
    assert list(rows) == ["least_confidence", "mahalanobis", "knn", "laplace", "mc_dropout"]
    for name in ("least_confidence", "mahalanobis", "knn"):
        assert rows[name]["ood_auroc"][str(oos)] == side["ood"][str(oos)][name]["auroc"]
    assert (
        side["ood_auroc"][str(oos)] == rows["least_confidence"]["ood_auroc"][str(oos)]
    )  # calibrated default: least_confidence
    assert rows["least_confidence"]["ece"] == side["calibrated"]["ece"]
    assert all(r["cost_ratio"] >= 1 for n, r in rows.items() if n != "mc_dropout")  # the pass + their arithmetic
    assert side["mc_dropout"]["samples"] == 10 and rows["mc_dropout"]["score"] == "entropy"
    assert rows["laplace"]["score"] == "entropy" and 0 <= rows["laplace"]["ece"] <= 1
    assert set(json.loads(runner.invoke(app, ["evaluate", str(run)]).stdout)["methods"]) == {
        "least_confidence",
        "entropy",
        "margin",
        "max_logit",
        "energy",
        "mahalanobis",
        "knn",
        "laplace",
    }
    result = runner.invoke(app, ["evaluate", str(run), "--methods", "least_confidence,bogus"])
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


def test_calibrate_for_a_target_domain_from_an_input_log(served_run, tmp_path):
    """--target reads a serve --log-inputs file; the summary says what the weights are worth; predict's sets
    are the weighted per-input ones (Tibshirani et al. 2019), recomputed here from the stored state."""
    import shutil

    from scipy.special import softmax

    from caveat.calibration.text import Calibration
    from caveat.decide.shift import weighted_quantile
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run
    from tests.fakes import planted_texts

    run = tmp_path / "run"
    shutil.copytree(served_run, run)
    log = tmp_path / "traffic.jsonl"
    texts = [r["text"] for r in planted_texts(60, seed=9, keywords={"alpha": "first", "beta": "second"})]
    log.write_text(
        "".join(json.dumps({"time": "2026-12-03T10:00:00Z", "text": t, "decision": "answer"}) + "\n" for t in texts)
    )
    result = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--level", "0.8", "--target", str(log)])
    assert result.exit_code == 0, result.output
    shift = json.loads(result.stdout)["shift"]
    assert shift["target"] == str(log) and shift["n_target"] == 60
    assert 0 < shift["effective_sample_size"] <= 30 and 0 < shift["risk_sample"] <= 30  # 30 calibration texts
    assert shift["temperature"]["kept"] in {"temperature", "weighted_temperature"}
    assert shift["summary"] in result.stderr and "calibrated for 60 unlabelled target texts" in shift["summary"]

    cal = Calibration.from_run(open_run(run))
    assert cal.shift is not None and cal.policy.conformal.weighted is not None
    assert len(cal.calibration_scores) == 60  # the drift alarm's reference: the target's texts now
    probe = ["the alpha card", "gamma gamma again", "beta and alpha"]
    preds = Predictor.from_run(run, calibrated=False).predict(probe)
    probs = softmax(cal.scale(preds.logits[0]), axis=-1)
    q = weighted_quantile(*cal.policy.conformal.weighted, cal.shift.weights(preds.logits[0]), 0.2)
    expected = [[lab for c, lab in enumerate(preds.labels) if 1 - probs[i, c] <= q[i]] for i in range(3)]
    rows = [json.loads(line) for line in runner.invoke(app, ["predict", str(run), *probe]).stdout.splitlines()]
    assert [r["prediction_set"] for r in rows] == expected

    missing = runner.invoke(app, ["calibrate", str(run), "--target", str(tmp_path / "nope.txt")])
    assert missing.exit_code != 0 and "nope.txt': no such file" in str(missing.exception)


def test_ner_target_calibration_weighs_calibration_spans_towards_the_targets(ner_run, tmp_path):
    """--target on a NER run: an input log's texts split into words; the span threshold is chosen on a rejection
    sample of the calibration spans (risk.n_calibration), the word temperature is the in-domain one."""
    import shutil

    from caveat.calibration import SpanCalibration
    from caveat.models.rundir import open_run
    from tests.fakes import planted_ner

    run = tmp_path / "ner"
    shutil.copytree(ner_run, run)
    plain = calibrate_run(run, target_risk=0.2)
    log = tmp_path / "traffic.jsonl"
    sentences = [" ".join(tokens) for tokens, _ in planted_ner(80, seed=11)]
    log.write_text("".join(json.dumps({"time": "t", "text": t}) + "\n" for t in sentences))
    result = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--target", str(log)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    shift = summary["shift"]
    assert shift["n_target"] == 80 and shift["n_target_spans"] >= 80  # two or more entities per sentence
    assert summary["risk"]["n_calibration"] == shift["risk_sample"] <= summary["n_spans"]
    assert 0 < shift["effective_sample_size"] <= summary["n_spans"]
    assert summary["temperature"] == plain["temperature"]
    assert "calibrated for 80 unlabelled target sentences" in result.stderr
    assert shift["covariates"] == "confidence, length, type and familiarity"  # the run's training split was read
    reference = SpanCalibration.from_run(open_run(run)).calibration_scores
    assert len(reference) == shift["n_target_spans"]  # the drift alarm's reference: the target's spans now

    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps({"time": "t", "text": "nothing here"}) + "\n")
    with pytest.raises(DataError, match="entity spans in the 1 target sentences"):
        calibrate_run(run, target=[str(few)])


def test_calibrated_sets_are_never_empty(served_run):
    """calibrate fits non-empty sets: an input no label fits gets its top label, which the risk threshold judges;
    no row says "no label is plausible"."""
    texts = ["the alpha card", "zebra xylophone quartz", "qqq", "beta gamma alpha", "what is the capital of peru"]
    rows = [json.loads(line) for line in runner.invoke(app, ["predict", str(served_run), *texts]).stdout.splitlines()]
    assert len(rows) == 5
    assert all(r["prediction_set"] and r["label"] in r["prediction_set"] for r in rows)
    assert not any("no label is plausible" in r["reason"] for r in rows)
    state = json.loads((served_run / "caveat.json").read_text())["calibration"]["conformal"]
    assert state["nonempty"] is True


def test_level_replaces_alpha_which_still_works_with_a_deprecation_message(served_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(served_run, run)
    old = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--alpha", "0.25"])
    assert old.exit_code == 0, old.output
    assert "--alpha is deprecated" in old.stderr and "use --level 0.75" in old.stderr
    assert json.loads(old.stdout)["conformal"]["alpha"] == 0.25
    new = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--level", "0.75"])
    assert new.exit_code == 0 and "deprecated" not in new.stderr
    assert json.loads(new.stdout)["conformal"]["alpha"] == 0.25
    both = runner.invoke(app, ["calibrate", str(run), "--alpha", "0.1", "--level", "0.9"])
    assert both.exit_code != 0 and "give only --level" in str(both.exception)
    bad = runner.invoke(app, ["calibrate", str(run), "--level", "90"])
    assert bad.exit_code != 0 and "must be in (0, 1); got 90" in str(bad.exception)


def test_the_old_score_name_msp_still_works_as_least_confidence_with_a_warning(served_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(served_run, run)
    old = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--score", "msp"])
    assert old.exit_code == 0, old.output
    warning = "warning: uncertainty score 'msp' is now called 'least_confidence'; the old name will be removed"
    assert old.stderr.count(warning) == 1  # said once, though several layers take the name
    stored = json.loads((run / "caveat.json").read_text())["calibration"]
    assert stored["score"] == stored["risk"]["score"] == "least_confidence"
    new = runner.invoke(app, ["calibrate", str(run), "--target-risk", "0.2", "--score", "least_confidence"])
    assert new.exit_code == 0 and "warning: uncertainty score" not in new.stderr
    assert json.loads(new.stdout)["risk"] == json.loads(old.stdout)["risk"]  # the same fit under either name

    row = json.loads(runner.invoke(app, ["predict", str(run), "the alpha card"]).stdout)
    assert "least_confidence" in row["uncertainty"] and "msp" not in row["uncertainty"]
    assert "msp" not in row["reason"]

    side = runner.invoke(app, ["evaluate", str(run), "--methods", "msp,entropy"])
    assert side.exit_code == 0, side.output
    assert list(json.loads(side.stdout)["methods"]) == ["least_confidence", "entropy"]
    assert side.stderr.count(warning) == 1
