"""benchmarks/llm.py's table rows on planted results (the benches themselves train SmolLM2 for half an hour), and its
held-out-temperature check on a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from benchmarks.llm import laplace_clinc_rows, laplace_sst2_rows, temperature_by_held_out_set
from caveat.data.resolve import resolve_split
from caveat.evaluation.calibration import ece
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from tests.conftest import one_thread


def planted(la_nll: float) -> dict:
    figures = {"ece": 0.01, "brier": 0.1, "aurc": 0.01, "error_auroc": 0.9, "cost_ratio": 11.0}
    return {
        "laplace_lora": {"nll": la_nll, **figures},
        "temperature_scaled": {"nll": 0.25, "ece": 0.009, "temperature": 1.2},
        "ood_auroc": {"least_confidence": 0.93, "knn": 0.967, "laplace_lora": 0.941},
        "nll_no_worse_than_temperature": la_nll <= 0.25,
    }


def test_laplace_clinc_rows_say_the_check_and_every_oos_auroc():
    better, worse = laplace_clinc_rows(planted(0.24)), laplace_clinc_rows(planted(0.26))
    assert len(better) == 2 and "0.2400 / 0.0100 vs 0.2500 / 0.0090 (11.0× a pass) | NLL no worse | yes |" in better[0]
    assert "| NLL no worse | no |" in worse[0]
    assert "0.9410 (least_confidence 0.9300, knn 0.9670) | report |" in better[1]


def test_laplace_rows_say_the_prior_the_tuning_chose_when_the_record_has_it():
    record = planted(0.24)
    assert "prior precision" not in laplace_sst2_rows(record)[0]  # records written before it was kept
    record["laplace_lora"]["fitted"] = {"prior_precision": 3.1622776e4, "temperature": 1.2}
    sst2, clinc = laplace_sst2_rows(record), laplace_clinc_rows(record)
    assert "(11.0× a pass; prior precision 3.16e+04, tuned on calibration) | NLL no worse | yes |" in sst2[0]
    assert "; prior precision 3.16e+04, tuned on calibration) | NLL no worse | yes |" in clinc[0]


def test_temperature_by_held_out_set_fits_on_the_split_calibrate_fits_on(served_run):
    """The calibration split's entry reproduces the run's own fitted temperature (same split, same logits), and
    each entry's test ECE is the test ECE at its temperature."""
    with one_thread():
        out = temperature_by_held_out_set(served_run)
        run = open_run(served_run)
        test = resolve_split(run, "test").examples
        z = Predictor.from_run(run).predict([e.text for e in test], calibrated=False).logits[0]
    fitted = json.loads((served_run / "caveat.json").read_text())["calibration"]["temperature"]
    assert out["calibration"]["temperature"] == pytest.approx(fitted, rel=1e-6)
    assert set(out) == {"calibration", "validation"} and out["validation"]["n"] == len(resolve_split(run, "validation"))
    y = np.array([run.labels.index(e.label) for e in test])
    for entry in out.values():
        assert entry["test_ece"] == pytest.approx(ece(softmax(z / entry["temperature"], axis=-1), y))
