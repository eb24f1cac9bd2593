"""The ``distill`` benchmark's helpers on tiny runs (the figures themselves come from ``make bench`` on SST-2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.distill import distill_figures, distill_rows, train_students
from caveat.config import load_config
from caveat.data.load import load_data
from caveat.evaluation import calibration as cm
from caveat.inference import Predictor, ensemble_predict
from tests.conftest import one_thread, tiny_overrides


def test_the_distill_benchmark_runs_end_to_end_on_tiny_runs(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=3, tracking="none"))
    with one_thread():
        options = {"target_risk": 0.2, "alpha": 0.2}
        runs = train_students(cfg, tmp_path, members=2, calibrate_options=options)
        ensemble, student, calibrated = runs
        stamps = [(run / "caveat.json").stat().st_mtime_ns for run in runs]
        assert train_students(cfg, tmp_path, members=2, calibrate_options=options) == runs  # finished runs reused
        assert [(run / "caveat.json").stat().st_mtime_ns for run in runs] == stamps
        record = distill_figures(ensemble, student, calibrated, repeats=2, n_texts=24, calibrate_options=options)
    assert json.loads((student / "caveat.json").read_text())["config"]["train"]["objective"] == "distill"
    assert record["teacher"]["path"] == str(ensemble) and record["members"] == 2
    assert record["teacher"]["calibration_temperature"] is None  # the default student: raw targets
    ensemble_temperature = json.loads((ensemble / "caveat.json").read_text())["calibration"]["ensemble"]["temperature"]
    assert record["calibrated_teacher"]["calibration_temperature"] == ensemble_temperature
    for name in ("ensemble", "student", "member", "student_of_calibrated_teacher"):
        figures = record[name]
        assert 0 <= figures["ece"] <= 1 and 0 <= figures["ece_calibrated"] <= 1 and figures["nll"] > 0
        assert figures["temperature"] > 0 and 0 <= figures["accuracy"] <= 1
    assert record["ece_gap"] == record["student"]["ece"] - record["ensemble"]["ece"]
    served = record["student"]["ece_calibrated"] - record["ensemble"]["ece_calibrated"]
    assert record["ece_gap_calibrated"] == served  # the judged gap: each as caveat serves it
    assert record["met"] == (served <= 0.01 and record["cost"]["student_over_member"] <= 1.1)
    # the ensemble's raw figures are its mean probabilities' (what caveat evaluate --ensemble reports)
    test = load_data(cfg).test
    probs = ensemble_predict(Predictor.from_run(ensemble).ensemble(), [ex.text for ex in test.examples]).probs
    y = np.array([["first", "second", "third"].index(ex.label) for ex in test.examples])
    assert record["ensemble"]["ece"] == pytest.approx(cm.ece(probs.mean(0), y), abs=1e-6)
    assert record["ensemble"]["accuracy"] == pytest.approx(float((probs.mean(0).argmax(-1) == y).mean()))
    cost = record["cost"]
    assert (
        cost["n_texts"] == 24
        and cost["repeats"] == 2
        and list(cost["median_seconds"])
        == [
            "student",
            "member",
            "ensemble",
        ]
    )
    assert cost["student_over_ensemble"] == cost["median_seconds"]["student"] / cost["median_seconds"]["ensemble"]
    rows = distill_rows(record)
    assert len(rows) == 3 and all(row.startswith("| SST-2") and row.count("|") == 7 for row in rows)
