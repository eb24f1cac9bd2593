"""Serving helpers; the runs served (``served_run``, ``uncalibrated_run``, ``ner_run``,
``calibrated_ner_run``) are session fixtures of tests/conftest.py, shared with the explanation tests."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from caveat.service import ServiceSettings, create_app
from tests.conftest import one_thread


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_thread():
        yield


@contextlib.contextmanager
def serving(run: Path, timeout: float = 60.0, **settings):
    """A TestClient on ``create_app`` for ``run``, once /readyz answers 200."""
    app = create_app(ServiceSettings.from_env({}, run_dir=run, **settings))
    with TestClient(app) as client:
        deadline = time.monotonic() + timeout
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.02)
        yield client


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text exposition."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {head} in /metrics")


def close(a, b, tol=1e-5) -> bool:
    """Equal JSON values, floats within ``tol`` (batch composition changes padding, not results)."""
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    return a == b
