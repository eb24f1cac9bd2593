"""``caveat serve`` for real: uvicorn in a subprocess on a free loopback port, talked to over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from caveat.cli.app import app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_caveat_serve_over_http(served_run, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "CAVEAT_API_KEY": "k3y"}
    cmd = [
        sys.executable,
        "-m",
        "caveat",
        "serve",
        str(served_run),
        "--port",
        str(port),
        "--torch-threads",
        "1",
        "--no-access-log",
        "--max-wait-ms",
        "50",
        "--body-timeout",
        "1",
        "--max-connections",
        "50",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base, key = f"http://127.0.0.1:{port}", {"X-API-Key": "k3y"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"caveat serve exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        assert httpx.post(f"{base}/v1/predict", json={"texts": ["alpha"]}).status_code == 401  # key from the env

        async def many():
            async with httpx.AsyncClient(base_url=base, headers=key, timeout=30) as client:
                texts = [f"{w} card {i}" for i in range(4) for w in ("alpha", "beta", "gamma")]
                replies = await asyncio.gather(
                    *(client.post("/v1/predict", json={"texts": [t], "k": 1}) for t in texts)
                )
                return texts, replies

        texts, replies = asyncio.run(many())
        assert all(r.status_code == 200 for r in replies)
        rows = [r.json()["predictions"][0] for r in replies]
        assert [r["text"] for r in rows] == texts
        assert [r["label"] for r in rows] == [
            {"alpha": "first", "beta": "second", "gamma": "third"}[t.split()[0]] for t in texts
        ]
        assert all(r["decision"] in {"answer", "abstain", "route"} for r in rows)
        metrics = httpx.get(f"{base}/metrics", headers=key).text
        assert 'caveat_http_requests_total{route="/v1/predict",status="200"} 12.0' in metrics
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "caveat"
        # a client that sends its headers and one byte of a 100-byte body holds its connection 1 s, then gets 408
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\nContent-Length: 100\r\n\r\n{")
        assert httpx.post(f"{base}/v1/predict", json={"texts": ["beta"]}, headers=key).status_code == 200
        answer = b""
        while b"did not arrive" not in answer:  # headers and body may come in separate reads on a busy machine
            chunk = slow.recv(4096)  # the socket's 10 s timeout bounds the wait
            if not chunk:
                break
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer, answer[:300]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # uvicorn raises the signal again after a graceful shutdown; caveat serve ends with 0 all the same
    assert code == 0 and "Application shutdown complete" in log.read_text(), (code, log.read_text())


def test_serve_refuses_an_uncalibrated_run_before_binding(uncalibrated_run):
    result = CliRunner().invoke(app, ["serve", str(uncalibrated_run), "--port", "1"])
    assert result.exit_code != 0
    assert "caveat calibrate" in str(result.exception) and "--allow-uncalibrated" in str(result.exception)
