"""Calibration reload (POST /v1/admin/reload, SIGHUP): the new calibration is served without a failed
request, a batch in flight finishes with the one it started with, a calibration that cannot be read keeps
the live one, the drift alarm follows, and the admin route needs the API key."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from caveat.calibration.store import ARRAYS_FILE, CALIBRATION_SCORES, load_arrays, save_arrays, save_calibration
from caveat.data.readers.logged import read_logged_texts
from caveat.inference import Predictor
from caveat.models.rundir import RUN_FILE, open_run
from caveat.rows import predict_rows
from caveat.service.engine import calibration_fingerprint
from tests.service.conftest import metric, serving
from tests.service.test_server import free_port

KEY = "adm1n-k3y"
H = {"X-API-Key": KEY}
TEXTS = ["the alpha card", "my beta parcel now", "please gamma", "alpha beta", "house cat dog tree road"]


@pytest.fixture
def run_copy(served_run, tmp_path) -> Path:
    """A copy of the calibrated run whose calibration a test may change (``served_run`` is shared)."""
    return Path(shutil.copytree(served_run, tmp_path / "run"))


def recalibrate(path: Path, **changes) -> None:
    """Store the run's calibration again with ``changes`` (e.g. another temperature), as caveat calibrate would."""
    run = open_run(path)
    save_calibration(run, {**run.info["calibration"], **changes})


def offline(path: Path, text: str) -> dict:
    """The row ``caveat predict`` gives ``text`` with the calibration stored in ``path`` now."""
    return predict_rows(Predictor.from_run(open_run(path)), [text]).rows[0]


def probability(client, text: str) -> float:
    response = client.post("/v1/predict", json={"texts": [text]}, headers=H)
    assert response.status_code == 200, response.json()
    return response.json()["predictions"][0]["probability"]


def test_reload_swaps_the_calibration_under_load_with_no_failed_request(run_copy):
    with serving(run_copy, api_key=KEY, max_wait_ms=2) as c:
        live = c.get("/readyz").json()["calibration"]
        assert live == calibration_fingerprint(open_run(run_copy))
        old = probability(c, "alpha card")
        recalibrate(run_copy, temperature=5.0)  # the tiny run's own sits at 0.05: every probability saturated
        new = offline(run_copy, "alpha card")["probability"]
        assert abs(new - old) > 0.05
        stop, results = threading.Event(), []

        def hammer():
            while not stop.is_set():
                r = c.post("/v1/predict", json={"texts": ["alpha card"]}, headers=H)
                results.append((r.status_code, r.json()["predictions"][0]["probability"] if r.is_success else r.text))

        def wait_for(n):
            deadline = time.monotonic() + 60
            while len(results) < n:
                assert time.monotonic() < deadline, f"only {len(results)} responses"
                time.sleep(0.01)

        with ThreadPoolExecutor(4) as pool:
            load = [pool.submit(hammer) for _ in range(4)]
            wait_for(8)
            reload = c.post("/v1/admin/reload", headers=H)
            wait_for(len(results) + 8)
            stop.set()
            for f in load:
                f.result()
        assert reload.status_code == 200, reload.json()
        body = reload.json()
        assert body["previous"] == live != body["calibration"] and body["calibrated"] is True
        assert (
            c.get("/readyz").json()["calibration"] == body["calibration"] == calibration_fingerprint(open_run(run_copy))
        )
        assert [status for status, _ in results] == [200] * len(results)  # no request failed
        served = [p for _, p in results]
        assert all(p == pytest.approx(old, abs=1e-5) or p == pytest.approx(new, abs=1e-5) for p in served)
        assert served[0] == pytest.approx(old, abs=1e-5) and served[-1] == pytest.approx(new, abs=1e-5)
        assert probability(c, "alpha card") == pytest.approx(new, abs=1e-5)
        text = c.get("/metrics", headers=H).text
        assert metric(text, "caveat_calibration_reloads_total", outcome="ok") == 1


def test_a_batch_in_flight_finishes_with_the_calibration_it_started_with(run_copy, monkeypatch):
    with serving(run_copy, api_key=KEY) as c:
        old = probability(c, "beta slow")
        recalibrate(run_copy, temperature=5.0)
        new = offline(run_copy, "beta slow")["probability"]
        predictor = c.app.state.caveat.engine.predictor
        real, entered, release = predictor.predict, threading.Event(), threading.Event()

        def slow(inputs, **kw):
            if "beta slow" in inputs:  # hold the batch inside the model thread
                entered.set()
                assert release.wait(30)
            return real(inputs, **kw)

        monkeypatch.setattr(predictor, "predict", slow)
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(c.post, "/v1/predict", json={"texts": ["beta slow"]}, headers=H)
            assert entered.wait(30)
            reload = pool.submit(c.post, "/v1/admin/reload", headers=H)
            time.sleep(0.5)
            assert not reload.done()  # the swap waits for the batch in the model thread
            release.set()
            row = in_flight.result().json()["predictions"][0]
            assert reload.result().status_code == 200
    assert row["probability"] == pytest.approx(old, abs=1e-5) and abs(old - new) > 0.05


def _garbage_arrays(run: Path) -> str:
    (run / ARRAYS_FILE).write_bytes(b"this is not a safetensors file")
    return "could not be reloaded"


def _no_arrays(run: Path) -> str:
    (run / ARRAYS_FILE).unlink()
    return f"lacks {ARRAYS_FILE}; calibrate the run again"


def _half_a_summary(run: Path) -> str:
    info = json.loads((run / RUN_FILE).read_text())
    del info["calibration"]["risk"]
    (run / RUN_FILE).write_text(json.dumps(info))
    return "KeyError: 'risk'"


def _not_json(run: Path) -> str:
    (run / RUN_FILE).write_text('{"format_version": ')
    return "JSONDecodeError"


def _another_model(run: Path) -> str:
    info = json.loads((run / RUN_FILE).read_text())
    info["created"] = "2999-01-01T00:00:00Z"
    (run / RUN_FILE).write_text(json.dumps(info))
    return "now holds another model .* restart the service"


@pytest.mark.parametrize("damage", [_garbage_arrays, _no_arrays, _half_a_summary, _not_json, _another_model])
def test_a_calibration_that_cannot_be_read_keeps_the_live_one(run_copy, damage, caplog):
    with serving(run_copy, api_key=KEY) as c:
        live = c.get("/readyz").json()["calibration"]
        before = c.post("/v1/predict", json={"texts": TEXTS}, headers=H).json()["predictions"]
        recalibrate(run_copy, temperature=5.0)  # a change the failed reload must not bring in
        match = damage(run_copy)
        r = c.post("/v1/admin/reload", headers=H)
        assert r.status_code == 409, r.json()
        detail = r.json()["detail"]
        assert re.search(match, detail) and f"the live calibration {live} keeps serving" in detail, detail
        assert c.get("/readyz").json()["calibration"] == live
        assert c.post("/v1/predict", json={"texts": TEXTS}, headers=H).json()["predictions"] == before
        text = c.get("/metrics", headers=H).text
        assert metric(text, "caveat_calibration_reloads_total", outcome="failed") == 1
        assert 'outcome="ok"' not in text
    assert "reloading the calibration of" in caplog.text and "failed, still serving" in caplog.text


def test_the_drift_alarm_compares_with_the_reloaded_calibration(run_copy):
    with serving(run_copy, api_key=KEY, drift_window=10, drift_min_inputs=5) as c:
        c.post("/v1/predict", json={"texts": TEXTS}, headers=H)
        assert metric(c.get("/metrics", headers=H).text, "caveat_drift_window_inputs", score="least_confidence") == len(
            TEXTS
        )
        run = open_run(run_copy)
        arrays = load_arrays(run)
        reference = np.linspace(0.3, 0.9, 40)
        save_arrays(run, {**arrays, CALIBRATION_SCORES: reference})
        recalibrate(run_copy, score="entropy")
        assert c.post("/v1/admin/reload", headers=H).status_code == 200
        np.testing.assert_allclose(c.app.state.caveat.metrics.drift.reference, reference)
        text = c.get("/metrics", headers=H).text
        assert metric(text, "caveat_drift_window_inputs", score="entropy") == 0  # old scores are not comparable
        c.post("/v1/predict", json={"texts": TEXTS}, headers=H)
        text = c.get("/metrics", headers=H).text
        assert metric(text, "caveat_drift_window_inputs", score="entropy") == len(TEXTS)
        # the planted reference is far from what the tiny run serves: the alarm fires against the new one
        assert metric(text, "caveat_drift_ks_statistic", score="entropy") > 0.5


def test_the_admin_route_needs_a_configured_key(served_run):
    with serving(served_run) as c:
        r = c.post("/v1/admin/reload")
        assert r.status_code == 403 and re.search(r"needs an API key.*CAVEAT_API_KEY.*SIGHUP", r.json()["detail"])
        assert "caveat_calibration_reloads_total{" not in c.get("/metrics").text  # refused: no reload tried
    with serving(served_run, api_key=KEY) as c:
        missing = c.post("/v1/admin/reload")
        assert missing.status_code == 401 and "missing X-API-Key" in missing.json()["detail"]
        wrong = c.post("/v1/admin/reload", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "wrong X-API-Key" in wrong.json()["detail"]
        same = c.post("/v1/admin/reload", headers=H).json()  # nothing changed on disk: the same calibration
        assert same["calibration"] == same["previous"] == c.get("/readyz").json()["calibration"] is not None


@contextlib.contextmanager
def caveat_serve(run: Path, log: Path, *args: str):
    """``caveat serve RUN ARGS`` in a subprocess on a free port; yields (process, base URL) once ready."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CAVEAT_API_KEY", None)
    cmd = [sys.executable, "-m", "caveat", "serve", str(run), "--port", str(port), "--torch-threads", "1", *args]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"caveat serve exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield proc, base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def _until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_caveat_serve_and_a_broken_calibration_keeps_it_up(run_copy, tmp_path):
    inputs = tmp_path / "inputs.jsonl"
    flags = ("--no-access-log", "--log-inputs", str(inputs), "--log-max-bytes", "100000", "--log-backups", "2")
    with caveat_serve(run_copy, tmp_path / "serve.log", *flags) as (proc, base):

        def predict() -> float:
            r = httpx.post(f"{base}/v1/predict", json={"texts": ["gamma card"]}, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()["predictions"][0]["probability"]

        def live() -> str:
            return httpx.get(f"{base}/readyz", timeout=5).json()["calibration"]

        first, old = live(), predict()
        assert httpx.post(f"{base}/v1/admin/reload", timeout=5).status_code == 403  # no key: SIGHUP only
        recalibrate(run_copy, temperature=5.0)
        proc.send_signal(signal.SIGHUP)
        second = _until(lambda: live() != first and live(), "the reload")
        assert second == calibration_fingerprint(open_run(run_copy)) and proc.poll() is None
        new = predict()
        assert abs(new - old) > 0.05
        (run_copy / ARRAYS_FILE).write_bytes(b"junk")
        proc.send_signal(signal.SIGHUP)
        failed = r'caveat_calibration_reloads_total{outcome="failed"} 1.0'
        _until(lambda: failed in httpx.get(f"{base}/metrics", timeout=5).text, "the failed reload")
        assert proc.poll() is None and live() == second and predict() == pytest.approx(new, abs=1e-6)
    assert read_logged_texts(inputs) == ["gamma card"] * 3  # the CLI's --log-inputs, written out at shutdown
    assert "SIGHUP: reloading the calibration of" in (tmp_path / "serve.log").read_text()


def test_a_ner_run_reloads_its_span_calibration(calibrated_ner_run, tmp_path):
    run = Path(shutil.copytree(calibrated_ner_run, tmp_path / "ner"))
    words = ["the", "bob", "smith", "went", "to", "rome"]

    def confidences(client) -> list[float]:
        body = client.post("/v1/predict", json={"tokens": [words]}, headers=H).json()
        return [span["confidence"] for span in body["predictions"][0]["spans"]]

    with serving(run, api_key=KEY) as c:
        before, live = confidences(c), c.get("/readyz").json()["calibration"]
        recalibrate(run, temperature=100.0)  # flat tag probabilities: far lower span confidence
        body = c.post("/v1/admin/reload", headers=H).json()
        after = confidences(c)
    assert body["previous"] == live != body["calibration"] == calibration_fingerprint(open_run(run))
    assert len(after) == len(before) == 2 and all(a < b - 1e-3 for a, b in zip(after, before))
