"""The NER drift alarm: served span uncertainties (1 - calibrated span confidence) against those of the
calibration split, stored by ``caveat calibrate`` (runs calibrated before: computed when the model loads)."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from caveat.calibration import SpanCalibration
from caveat.calibration.store import ARRAYS_FILE, CALIBRATION_SCORES, load_arrays
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.service import engine
from caveat.service.engine import SPAN_SCORE, span_drift_reference
from tests.fakes import FILLER, planted_ner
from tests.service.conftest import metric, serving

KEY = "adm1n-k3y"
RECALIBRATE = "was calibrated before its NER drift reference was stored"


def lone_surnames(n: int, seed: int) -> list[list[str]]:
    """The planted shift: 'smith' without a first name. In training it only ever follows alice or bob (I-PER),
    so the model tags it as a person with little confidence."""
    rng = random.Random(seed)
    return [rng.choices(FILLER, k=rng.randint(2, 5)) + ["smith"] + rng.choices(FILLER, k=2) for _ in range(n)]


def test_the_reference_is_the_calibration_splits_span_uncertainty(calibrated_ner_run):
    run = open_run(calibrated_ner_run)
    calibration = SpanCalibration.from_run(run)
    predictor = Predictor.from_run(run, calibrated=False)
    reference = span_drift_reference(predictor, run, calibration)
    assert reference is not None and len(reference) >= 20 and np.all((reference >= 0) & (reference <= 1))
    assert len(span_drift_reference(predictor, run, calibration, limit=5)) < len(reference)


def test_calibrating_a_ner_run_stores_the_reference(calibrated_ner_run):
    run = open_run(calibrated_ner_run)
    stored = load_arrays(run)[CALIBRATION_SCORES]  # (S,) written by calibrate_spans
    calibration = SpanCalibration.from_run(run)
    np.testing.assert_array_equal(calibration.calibration_scores, stored)
    computed = span_drift_reference(Predictor.from_run(run, calibrated=False), run, calibration)
    assert len(stored) == len(computed) >= 20  # every span of the calibration split: the pass's own figures
    np.testing.assert_allclose(stored, computed, atol=1e-5)


@pytest.fixture
def old_ner_run(calibrated_ner_run, tmp_path) -> Path:
    """The calibrated NER run as calibrated before the drift reference was stored: no calibration.safetensors."""
    run = Path(shutil.copytree(calibrated_ner_run, tmp_path / "old-ner"))
    (run / ARRAYS_FILE).unlink()
    return run


def test_the_service_serves_the_stored_reference_without_a_pass(calibrated_ner_run, monkeypatch, caplog):
    def no_pass(*args, **kwargs):
        raise AssertionError("the calibration split was predicted for the drift reference")

    monkeypatch.setattr(engine, "span_drift_reference", no_pass)
    stored = SpanCalibration.from_run(open_run(calibrated_ner_run)).calibration_scores
    with caplog.at_level(logging.WARNING, logger="caveat.service"), serving(calibrated_ner_run, timeout=20) as c:
        monitor = c.app.state.caveat.metrics.drift
        np.testing.assert_array_equal(monitor.reference, stored)
        assert metric(c.get("/metrics").text, "caveat_drift_enabled", score=SPAN_SCORE) == 1
    assert RECALIBRATE not in caplog.text


def test_an_old_ner_run_gets_its_reference_from_the_calibration_split(old_ner_run, calibrated_ner_run, caplog):
    assert SpanCalibration.from_run(open_run(old_ner_run)).calibration_scores is None
    stored = SpanCalibration.from_run(open_run(calibrated_ner_run)).calibration_scores
    with caplog.at_level(logging.WARNING, logger="caveat.service"), serving(old_ner_run, api_key=KEY) as c:
        monitor = c.app.state.caveat.metrics.drift
        assert monitor.enabled and len(monitor.reference) == len(stored)
        np.testing.assert_allclose(monitor.reference, stored, atol=1e-5)
        assert metric(c.get("/metrics", headers={"X-API-Key": KEY}).text, "caveat_drift_enabled", score=SPAN_SCORE) == 1
        assert c.post("/v1/admin/reload", headers={"X-API-Key": KEY}).status_code == 200  # the pass runs again
        assert c.app.state.caveat.metrics.drift.enabled
    assert caplog.text.count(RECALIBRATE) == 1 and f"caveat calibrate {old_ner_run}` again" in caplog.text


def test_the_ner_alarm_stays_quiet_in_distribution_and_fires_on_a_planted_shift(calibrated_ner_run):
    with serving(calibrated_ner_run, drift_window=60, drift_min_inputs=30, drift_alpha=0.01) as c:
        monitor = c.app.state.caveat.metrics.drift
        assert monitor.enabled and len(monitor.reference) >= 20
        assert metric(c.get("/metrics").text, "caveat_drift_enabled", score=SPAN_SCORE) == 1

        same = [tokens for tokens, _ in planted_ner(40, seed=11)]  # fresh sentences of the calibration split's kind
        c.post("/v1/predict", json={"tokens": same})
        text = c.get("/metrics").text
        assert metric(text, "caveat_drift_window_inputs", score=SPAN_SCORE) >= 30  # spans, not sentences
        assert metric(text, "caveat_drift_alarm", score=SPAN_SCORE) == 0
        assert metric(text, "caveat_drift_ks_pvalue", score=SPAN_SCORE) > 0.05

        c.post("/v1/predict", json={"tokens": lone_surnames(60, seed=12)})  # fills the window with shifted spans
        text = c.get("/metrics").text
        assert metric(text, "caveat_drift_alarm", score=SPAN_SCORE) == 1
        assert metric(text, "caveat_drift_ks_pvalue", score=SPAN_SCORE) < 1e-6


def test_an_uncalibrated_ner_run_has_no_drift_test(ner_run):
    with serving(ner_run, allow_uncalibrated=True) as c:
        c.post("/v1/predict", json={"tokens": [["alice", "went", "to", "rome"]]})
        assert metric(c.get("/metrics").text, "caveat_drift_enabled", score="none") == 0
