"""A graceful shutdown for real: the service in a subprocess gets SIGTERM while a request is in the model;
/readyz turns 503 at once, the request still gets its 200, and the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.service.test_server import free_port

# the app of caveat serve, run by caveat.service.server.run, with a model that takes 3 s over a text with "slow"
DRIVER = """
import sys, time
from pathlib import Path
from caveat.inference import Predictor
from caveat.service import ServiceSettings, create_app
from caveat.service.server import run

real, marker = Predictor.predict, Path(sys.argv[2])

def slow(self, inputs, **kw):
    if any("slow" in str(x) for x in inputs):
        marker.write_text("in the model")
        time.sleep(3)
    return real(self, inputs, **kw)

Predictor.predict = slow
settings = ServiceSettings.from_env(
    {}, run_dir=sys.argv[1], port=int(sys.argv[3]), torch_threads=1, access_log=False,
    shutdown_delay_s=1.0, shutdown_grace_s=10.0,
)
run(create_app(settings), settings)
"""


def test_sigterm_drains_the_requests_in_flight_then_exits_0(served_run, tmp_path):
    port, marker, log = free_port(), tmp_path / "in-model", tmp_path / "serve.log"
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(tmp_path / "driver.py"), str(served_run), str(marker), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 60 s:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.post, f"{base}/v1/predict", json={"texts": ["alpha slow"]}, timeout=30)
            while not marker.exists():
                assert time.monotonic() < deadline + 30 and not slow.done(), log.read_text()
                time.sleep(0.02)
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            ready = httpx.get(f"{base}/readyz", timeout=5)  # within the 1 s delay: still answered, not ready
            assert ready.status_code == 503 and ready.json()["detail"].startswith("shutting down"), ready.text
            answer = slow.result()
        assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == "first"
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 0 and time.monotonic() - stopped < 12, (code, text)
    assert "Application shutdown complete" in text and "Traceback" not in text, text
