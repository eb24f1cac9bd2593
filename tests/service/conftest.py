"""Runs served in these tests, trained once per session: a calibrated text run, the same run without
its calibration, and a token (NER) run."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from caveat.calibrate import calibrate_run
from caveat.config import load_config
from caveat.service import ServiceSettings, create_app
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides


@contextlib.contextmanager
def one_thread():
    """One intra-op torch thread: these models are tiny, and on a shared 2-core machine two spinning
    threads make training several times slower. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def served_run(tiny_backbone, text_data, tmp_path_factory) -> Path:
    """A tiny text run, trained and calibrated (planted keywords: alpha/beta/gamma -> first/second/third)."""
    run = tmp_path_factory.mktemp("service") / "run"
    with one_thread():
        Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=6)), run, progress=False).fit()
        calibrate_run(run, target_risk=0.2, alpha=0.2)
    return run


@pytest.fixture(scope="session")
def uncalibrated_run(served_run, tmp_path_factory) -> Path:
    """The same model with its calibration removed."""
    run = tmp_path_factory.mktemp("service") / "uncalibrated"
    shutil.copytree(served_run, run)
    info = json.loads((run / "caveat.json").read_text())
    info.pop("calibration")
    (run / "caveat.json").write_text(json.dumps(info))
    (run / "calibration.safetensors").unlink()
    return run


@pytest.fixture(scope="session")
def ner_run(tiny_backbone, ner_data, tmp_path_factory) -> Path:
    """A tiny NER run, not calibrated."""
    run = tmp_path_factory.mktemp("service") / "ner"
    overrides = tiny_overrides(tiny_backbone, ner_data, "token-classification", epochs=10)
    with one_thread():
        Trainer(load_config(overrides=overrides), run, progress=False).fit()
    return run


@pytest.fixture(scope="session")
def calibrated_ner_run(ner_run, tmp_path_factory) -> Path:
    """The NER run with its span calibration (SpanCaveats)."""
    run = tmp_path_factory.mktemp("service") / "ner-calibrated"
    shutil.copytree(ner_run, run)
    with one_thread():
        calibrate_run(run, target_risk=0.2, delta=0.1)
    return run


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
