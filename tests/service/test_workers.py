"""``caveat serve --workers 2`` for real: two processes, each with its own model, answer on one port; /metrics
sums their counters whichever worker answers it; SIGTERM on the parent drains both (/readyz 503 during the
delay), stops them and exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from caveat.errors import CaveatError, ConfigError
from caveat.service.settings import ServiceSettings
from caveat.service.workers import Supervisor, worker_settings
from tests.service.conftest import metric
from tests.service.test_server import free_port

KEY = {"X-API-Key": "k3y"}
PID = re.compile(r'pid="(\d+)"')


def per_worker(text: str, name: str) -> dict[int, float]:
    """``{pid: value}`` of the pid-labelled samples ``name`` in a /metrics text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") and (pid := PID.search(line)):
            found[int(pid.group(1))] = float(line.rsplit(" ", 1)[1])
    return found


def scrape(base: str) -> str:
    """/metrics over a new connection, so that either worker may answer."""
    response = httpx.get(f"{base}/metrics", headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def predict(base: str, texts: list[str]) -> list[int]:
    """The status of one POST /v1/predict per text, sent at once over as many connections."""

    async def send():
        async with httpx.AsyncClient(base_url=base, headers=KEY, timeout=30) as client:
            return await asyncio.gather(*(client.post("/v1/predict", json={"texts": [t]}) for t in texts))

    return [r.status_code for r in asyncio.run(send())]


def test_two_workers_answer_on_one_port_and_metrics_sum_over_both(served_run, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "CAVEAT_API_KEY": "k3y"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "caveat", "serve", str(served_run), "--workers", "2", "--port", str(port)]
    cmd += ["--torch-threads", "1", "--no-access-log", "--max-wait-ms", "5", "--shutdown-delay", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"caveat serve exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 90 s:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert httpx.post(f"{base}/v1/predict", json={"texts": ["alpha"]}).status_code == 401  # each worker's key

        # until both workers have served: each one's drift window counts the inputs it answered (pid label)
        statuses, windows = [], {}
        while len(windows) < 2 or not all(windows.values()):
            assert time.monotonic() < deadline, (statuses, windows, log.read_text())
            statuses += predict(base, [f"{w} card {len(statuses)}" for w in ("alpha", "beta", "gamma")])
            for _ in range(3):
                windows.update(per_worker(scrape(base), "caveat_drift_window_inputs"))
        served = statuses.count(200)  # a worker still loading its model answers 503; it is counted all the same
        assert served > 0 and set(statuses) <= {200, 503}, statuses

        # no more requests: whichever worker answers, the counters are the sum over both
        seen = {}
        while len(seen) < 2:
            assert time.monotonic() < deadline, (seen, log.read_text())
            text = scrape(base)
            pids = set(per_worker(text, "caveat_worker_up"))
            seen.update(per_worker(text, "caveat_drift_window_inputs"))
            assert len(pids) == 2 and set(seen) <= pids, text
            assert metric(text, "caveat_http_requests_total", route="/v1/predict", status="200") == served, text
            if 503 in statuses:
                assert metric(text, "caveat_http_requests_total", route="/v1/predict", status="503") == (
                    statuses.count(503)
                )
        assert sum(seen.values()) == served and all(seen.values()), (seen, served)
        assert all(Path(f"/proc/{pid}").exists() for pid in seen)

        proc.send_signal(signal.SIGTERM)  # to the parent only: it passes it on
        time.sleep(0.3)
        ready = httpx.get(f"{base}/readyz", timeout=5)  # within the 1 s delay: answered, not ready
        assert ready.status_code == 503 and ready.json()["detail"].startswith("shutting down"), ready.text
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 0 and text.count("Application shutdown complete") == 2, (code, text)
    assert not any(Path(f"/proc/{pid}").exists() for pid in seen), text  # the workers are gone too


def test_each_worker_writes_an_input_log_of_its_own(tmp_path):
    settings = ServiceSettings.from_env({}, run_dir=tmp_path, workers=3, log_inputs=tmp_path / "inputs.jsonl")
    assert worker_settings(settings, 2).log_inputs == tmp_path / "inputs.worker2.jsonl"
    assert worker_settings(settings, 2).workers == 3
    plain = ServiceSettings.from_env({}, run_dir=tmp_path, workers=2)
    assert worker_settings(plain, 1) == plain


def test_workers_must_be_at_least_one(tmp_path):
    with pytest.raises(ConfigError, match=r"--workers: Input should be greater than or equal to 1"):
        ServiceSettings.from_env({}, run_dir=tmp_path, workers=0)
    assert ServiceSettings.from_env({"CAVEAT_WORKERS": "3"}, run_dir=tmp_path).workers == 3


def test_a_worker_that_dies_before_serving_stops_the_service(tmp_path):
    # the parent's check would refuse this run; here a worker meets it, as when a worker cannot start
    settings = ServiceSettings.from_env({}, run_dir=tmp_path / "no-run", workers=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        supervisor = Supervisor(settings, sock, str(tmp_path))
        with pytest.raises(CaveatError, match=r"worker \d of caveat serve .* before its app was built"):
            supervisor.run()
    assert all(not p.is_alive() for p in supervisor.workers)
