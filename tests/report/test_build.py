"""build_report: the right sections for what the run has, and numbers that agree with evaluate and
with an independent computation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import f1_score

from caveat.calibration.run import calibrate_run
from caveat.errors import ConfigError
from caveat.evaluation import calibration as cm
from caveat.evaluation.run import evaluate_run
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.report import build_report

TEXT = [
    "overview",
    "performance",
    "calibration",
    "confidence",
    "risk_coverage",
    "conformal",
    "decisions",
    "ood",
    "weak_spots",
]
TEXT_UNCALIBRATED = ["overview", "performance", "calibration", "confidence", "risk_coverage", "ood", "weak_spots"]
NER = ["overview", "performance", "spans", "weak_spots"]
approx = pytest.approx


@pytest.fixture(scope="module")
def evaluated(text_runs, oos_file) -> dict:
    return evaluate_run(text_runs[0], "test", ood=[str(oos_file)], write=False)


def test_a_calibrated_run_with_ood_has_every_section(calibrated_report, oos_file):
    report, _ = calibrated_report
    assert report.section_keys == TEXT
    assert (
        report.calibrated and report.n == 63 and report.ood == [str(oos_file)] and report.task == "text-classification"
    )
    assert not any("caveat calibrate" in note for note in report.notes)
    overview = report.section("overview")
    splits = {row["split"]: row for row in overview.table("splits").records()}
    assert splits["train"]["examples"] == 192 and splits["test"]["examples"] == 63
    assert splits["calibration"]["examples"] + splits["validation"]["examples"] == 60
    assert splits[f"{oos_file} (out-of-scope)"]["examples"] == len(oos_file.read_text().splitlines())
    assert overview.metric("labels") == 3 and overview.metric("objective") == "erm" and overview.metric("epochs") == 3
    history = overview.table("history").records()
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(row["train loss"] > 0 for row in history) and all(
        0 <= row["validation accuracy"] <= 1 for row in history
    )
    assert overview.metric("best_validation") == max(row["validation accuracy"] for row in history)


def test_numbers_equal_those_of_evaluate(calibrated_report, evaluated, oos_file):
    report, _ = calibrated_report
    perf, cal, rc = report.section("performance"), report.section("calibration"), report.section("risk_coverage")
    for key in ("accuracy", "macro_f1", "weighted_f1", "nll"):
        assert perf.metric(key) == approx(evaluated[key])
    for key in ("ece", "ece_adaptive", "brier", "nll"):
        assert cal.metric(key) == approx(evaluated[key])
        assert cal.metric(f"calibrated.{key}") == approx(evaluated["calibrated"][key])
    assert cal.metric("calibrated.temperature") == approx(evaluated["calibrated"]["temperature"])
    assert report.section("confidence").metric("error_auroc") == approx(evaluated["calibrated"]["error_auroc"])
    for key in ("aurc", "accuracy_at_80", "accuracy_at_90", "accuracy_at_95"):
        assert rc.metric(key) == approx(evaluated["calibrated"][key])
    for key in ("coverage", "risk", "guarantee"):
        assert rc.metric(f"abstention.{key}") == approx(evaluated["abstention"][key])
    conformal = report.section("conformal")
    assert conformal.metric("conformal.coverage") == approx(evaluated["conformal"]["coverage"])
    assert conformal.metric("conformal.set_size") == approx(evaluated["conformal"]["set_size"])
    actions = {row["set"]: row for row in report.section("decisions").table("decisions").records()}
    for name, key in (("test", "in_scope"), (f"{oos_file} (out-of-scope)", str(oos_file))):
        assert {a: actions[name][a] for a in ("answer", "abstain", "route")} == {
            a: evaluated["decisions"][key][a] for a in ("answer", "abstain", "route")
        }
    rows = report.section("ood").table("ood").records()
    assert {row["score"] for row in rows} == {"least_confidence", "entropy", "energy", "mahalanobis", "knn"}
    for row in rows:
        assert row["AUROC"] == approx(evaluated["ood"][str(oos_file)][row["score"]]["auroc"])
        assert row["FPR@95"] == approx(evaluated["ood"][str(oos_file)][row["score"]]["fpr95"])


def test_numbers_equal_an_independent_computation(calibrated_report, text_runs, report_data):
    report, _ = calibrated_report
    run = open_run(text_runs[0])
    rows = [json.loads(line) for line in (report_data / "test.jsonl").read_text().splitlines()]
    probs = Predictor.from_run(run).predict([r["text"] for r in rows]).probs[0]  # (N, C)
    y = np.array([run.labels.index(r["label"]) for r in rows])
    pred = probs.argmax(-1)
    perf = report.section("performance")
    assert perf.metric("accuracy") == approx((pred == y).mean())
    assert perf.metric("macro_f1") == approx(f1_score(y, pred, average="macro"))
    assert report.section("calibration").metric("ece") == approx(cm.ece(probs, y), abs=1e-6)
    wrong = int((pred != y).sum())
    assert 0 < wrong < len(y), "the tiny run should make some mistakes, or the weak-spot checks test nothing"
    assert report.section("confidence").metric("n_wrong") == wrong
    pairs = report.section("weak_spots").table("confused_pairs").records()
    assert sum(p["count"] for p in pairs) == wrong  # 3 labels: at most 6 pairs, all shown
    assert max(pairs, key=lambda p: p["count"])["count"] == max(
        int(((y == t) & (pred == p)).sum()) for t in range(3) for p in range(3) if t != p
    )


def test_figures_carry_the_numbers_they_show(calibrated_report):
    report, _ = calibrated_report
    n, accuracy = report.n, report.section("performance").metric("accuracy")
    reliability = report.section("calibration").figure("reliability")
    assert [c.name for c in reliability.curves] == ["raw model", "temperature-scaled"]
    for curve in reliability.curves:
        assert sum(curve.count) == n
        ece = sum(c / n * abs(a - f) for c, a, f in zip(curve.count, curve.accuracy, curve.confidence))
        assert ece == approx(curve.ece)
    confidence = report.section("confidence")
    assert [sum(g.counts) for g in confidence.figure("confidence").groups] == [
        confidence.metric("n_correct"),
        confidence.metric("n_wrong"),
    ]
    curve = report.section("risk_coverage").figure("risk_coverage")
    risk = curve.series[0]
    assert risk.x[-1] == approx(1.0) and risk.y[-1] == approx(1 - accuracy)
    (point,) = curve.points  # the operating point: what the whole calibrated policy answers
    section = report.section("risk_coverage")
    assert point.x == approx(section.metric("abstention.coverage")) and point.y == approx(
        section.metric("abstention.risk")
    )
    assert 0 < point.x <= 1 and point.y <= 0.2 + 0.2  # the target, and slack for 30 calibration examples
    conformal = report.section("conformal")
    sizes = conformal.figure("set_size").groups[0].counts
    assert sum(sizes) == n and sum(k * c for k, c in enumerate(sizes)) / n == approx(
        conformal.metric("conformal.set_size")
    )
    for score in ("least_confidence", "entropy", "energy", "mahalanobis"):
        assert [sum(g.counts) for g in report.section("ood").figure(f"ood_{score}").groups] == [n, 5]
    uncertain = report.section("weak_spots").table("uncertain").records()
    assert len(uncertain) == 10 and [r["least_confidence"] for r in uncertain] == sorted(
        (r["least_confidence"] for r in uncertain), reverse=True
    )


def test_an_uncalibrated_run_leaves_the_calibrated_sections_out_and_says_how_to_add_them(
    uncalibrated_report, text_runs
):
    report, html = uncalibrated_report
    assert report.section_keys == TEXT_UNCALIBRATED and not report.calibrated
    assert any(f"caveat calibrate {text_runs[1]}" in note for note in report.notes)
    assert f"<code>caveat calibrate {text_runs[1]}</code>" in html.read_text(encoding="utf-8")
    assert [c.name for c in report.section("calibration").figure("reliability").curves] == ["raw model"]
    assert report.section("risk_coverage").figure("risk_coverage").points == []
    assert {row["score"] for row in report.section("ood").table("ood").records()} == {
        "least_confidence",
        "entropy",
        "energy",
    }
    assert "prediction set" not in report.section("weak_spots").table("uncertain").columns


def test_a_ner_run_renders_entity_scores_and_span_confidence(ner_reports, ner_run):
    before, after, _ = ner_reports
    assert before.section_keys == NER and after.section_keys == NER
    assert not before.calibrated and after.calibrated
    assert any("caveat calibrate" in note for note in before.notes)
    evaluated = evaluate_run(ner_run, "test", write=False)
    perf, spans = after.section("performance"), after.section("spans")
    for key in ("f1", "precision", "recall", "macro_f1", "token_accuracy"):
        assert perf.metric(key) == approx(evaluated[key])
    assert {r["label"]: r["f1"] for r in perf.table("per_type").records()} == approx(
        {k: v["f1"] for k, v in evaluated["per_type"].items()}
    )
    assert spans.metric("spans.n_spans") == evaluated["spans"]["n_spans"] > 0
    assert spans.metric("calibrated.span_ece") == approx(evaluated["calibrated"]["span_ece"])
    assert spans.metric("abstention.coverage") == approx(evaluated["abstention"]["coverage"])
    assert spans.metric("abstention.risk") == approx(evaluated["abstention"]["risk"])
    aggregations = {r["aggregation"]: r for r in spans.table("aggregations").records()}
    assert aggregations["product"]["wrong-span AUROC"] == approx(evaluated["spans"]["product"]["auroc"])
    histogram = spans.figure("span_confidence")
    assert sum(sum(g.counts) for g in histogram.groups) == evaluated["spans"]["n_spans"]
    with pytest.raises(KeyError, match="no metric 'calibrated.span_ece'"):
        before.section("spans").metric("calibrated.span_ece")


def test_bad_arguments_say_what_to_do(text_runs, ner_run):
    with pytest.raises(ConfigError, match="top must be an integer >= 1"):
        build_report(text_runs[1], top=0)
    with pytest.raises(ConfigError, match="neither a file nor a split name"):
        build_report(text_runs[1], data="no-such-split")
    with pytest.raises(ConfigError, match="ood is for text-classification runs"):
        build_report(ner_run, ood=["x.txt"])


def test_a_target_that_cannot_be_certified_is_said_in_the_report(text_runs, tmp_path):
    run = tmp_path / "strict"
    shutil.copytree(text_runs[0], run)
    risk = calibrate_run(run, target_risk=0.001, delta=0.2, alpha=0.2)["risk"]
    assert risk["threshold"] is None
    notes = build_report(run).section("risk_coverage").notes
    assert any(risk["summary"] in note and "answers nothing" in note for note in notes), notes
