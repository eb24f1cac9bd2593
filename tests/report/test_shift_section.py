"""The shift section from metrics.json written by hand: prediction-set and abstention columns, one
reliability figure per shifted set, the note on a calibration for a target domain only when there is one,
and an older metrics.json (no reliability, no decisions) still shown; then a real calibrated run end to end."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from caveat.evaluation.run import evaluate_run
from caveat.models.rundir import open_run
from caveat.report import build_report, write_report
from caveat.report.plots import render
from caveat.report.sections.shift import shift

GUARANTEE = "risk ≤ 20% at 80% confidence"
TARGET = {
    "target": "reviews.txt",
    "n_target": 400,
    "effective_sample_size": 123.456,
    "domain_auroc": 0.71,
    "temperature": {"kept": "weighted_temperature", "candidates": {"plain": 1.2, "weighted_temperature": 1.5}},
    "risk_sample": 300,
    "ood_stopped_target": 0.05,
    "summary": "calibrated for 400 unlabelled target texts: worth 123 examples.",
    "model": {"secret_state": "DO-NOT-SHOW"},
}


def entry(accuracy: float, *, calibrated: bool = True, bins: bool = True) -> dict:
    """A metrics.json entry as ``evaluate`` writes it (``bins=False``, ``calibrated=False``: as older ones did)."""
    m = {"n": 10, "accuracy": accuracy, "macro_f1": accuracy - 0.1, "ece": 0.2, "aurc": 0.1}
    if calibrated:
        m["calibrated"] = {"ece": 0.05, "temperature": 1.5}
        m["conformal"] = {"coverage": 0.7, "set_size": 1.4}
        m["abstention"] = {"score": "least_confidence", "risk": 0.25, "coverage": 0.6, "guarantee": GUARANTEE}
    if bins:
        m["reliability"] = {
            "n_bins": 15,
            "raw": {"confidence": [0.6, 0.95], "accuracy": [0.5, 0.75], "count": [2, 8]},
            **(
                {"calibrated": {"confidence": [0.55, 0.8], "accuracy": [0.5, 0.75], "count": [4, 6]}}
                if calibrated
                else {}
            ),
        }
    return m


def section(tmp_path, saved: dict, info: dict):
    (tmp_path / "metrics.json").write_text(json.dumps({"test": saved}), encoding="utf-8")
    ctx = SimpleNamespace(run=SimpleNamespace(path=tmp_path, info=info), data="test", metrics={"accuracy": 0.9})
    return shift(ctx)


def shifted(**sets) -> dict:
    return {
        **entry(0.9),
        "shift": {
            name: {"source": f"{name}.jsonl", "delta": {"accuracy": e["accuracy"] - 0.9}, **e}
            for name, e in sets.items()
        },
    }


def test_calibrated_sets_show_decisions_and_reliability(tmp_path):
    saved = shifted(cr=entry(0.7))
    info = {"calibration": {"conformal": {"alpha": 0.1}, "shift": TARGET}}
    s = section(tmp_path, saved, info)
    rows = s.table("shift").records()
    assert [r["set"] for r in rows] == ["test (in-domain)", "cr (cr.jsonl)"]
    cr = rows[1]
    assert cr["ECE (calibrated)"] == 0.05 and cr["Δ accuracy"] == pytest.approx(-0.2)
    assert cr["set coverage (target 0.9)"] == 0.7 and cr["mean set size"] == 1.4
    assert (cr["abstention risk"], cr["answered"], cr["guarantee"]) == (0.25, 0.6, GUARANTEE)
    figure = s.figure("reliability_cr")
    assert [c.name for c in figure.curves] == ["raw model", "temperature-scaled"]
    raw, cal = figure.curves
    assert raw.count == [2, 8] and raw.ece == 0.2 and cal.confidence == [0.55, 0.8] and cal.ece == 0.05
    assert render(figure).startswith(b"\x89PNG")
    note = next(n for n in s.notes if n.startswith("Calibrated for the target domain: "))
    assert TARGET["summary"] in note and "`reviews.txt` (400)" in note and "effective sample size 123.5" in note
    assert "DO-NOT-SHOW" not in s.model_dump_json()  # the fitted state stays out of the page


def test_no_target_calibration_no_note_and_no_alpha_no_target_level(tmp_path):
    s = section(tmp_path, shifted(cr=entry(0.7)), {"calibration": {}})
    assert not any("target domain" in n for n in s.notes)
    assert "set coverage" in s.table("shift").columns and len(s.notes) == 1


def test_an_older_metrics_json_still_renders(tmp_path):
    old = entry(0.7, calibrated=False, bins=False)
    saved = {**entry(0.9, calibrated=False, bins=False), "shift": {"cr": old, "new": entry(0.6, calibrated=False)}}
    s = section(tmp_path, saved, {})  # cr: no source, delta, ood, reliability; new: no decisions
    table = s.table("shift")
    assert table.columns == ["set", "examples", "accuracy", "macro F1", "ECE", "AURC", "Δ accuracy"]
    assert [r["set"] for r in table.records()] == ["test (in-domain)", "cr", "new"]
    assert table.records()[1]["Δ accuracy"] is None and s.table("shift_scores").rows == []
    assert [f.key for f in s.figures] == ["reliability_new"] and len(s.figures[0].curves) == 1
    assert any(n.startswith("No reliability diagram for cr:") for n in s.notes)


def test_a_calibrated_run_end_to_end(text_runs, report_data, tmp_path):
    run = shutil.copytree(text_runs[0], tmp_path / "run")
    evaluate_run(run, "test", shift={"same": str(report_data / "test.jsonl")})
    saved = json.loads((run / "metrics.json").read_text())["test"]
    report = build_report(run)
    s = report.section("shift")
    same = s.table("shift").records()[1]
    coverage = f"set coverage (target {1 - open_run(run).info['calibration']['conformal']['alpha']:.3g})"
    assert same[coverage] == saved["shift"]["same"]["conformal"]["coverage"] == saved["conformal"]["coverage"]
    assert same["abstention risk"] == saved["shift"]["same"]["abstention"]["risk"]
    figure = s.figure("reliability_same")
    assert [sum(c.count) for c in figure.curves] == [saved["n"]] * 2
    assert not any("target domain" in n for n in s.notes)
    assert "Reliability on same" in write_report(report, tmp_path / "report.html").read_text()
