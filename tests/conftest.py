"""Shared fixtures: a tiny backbone and planted-rule data, built once per session in a temp folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from caveat.calibration.run import calibrate_run
from caveat.config import load_config
from caveat.training.loop import Trainer
from tests.fakes import make_backbone, make_causal_lm, planted_ner, planted_texts, write_conll, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA_ROOT = Path(os.environ.get("CAVEAT_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return make_backbone(
        tmp_path_factory.mktemp("backbone"), ["alpha", "beta", "gamma", "alice", "bob", "smith", "paris", "rome"]
    )


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A tiny random causal LM folder (no chat template), for caveat.generate and /v1/generate."""
    return make_causal_lm(tmp_path_factory.mktemp("tiny-lm"), ["true", "false", "yes", "no"])


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A tiny random Llama-style decoder whose vocabulary holds the planted words (a backbone for LoRA tests)."""
    return make_causal_lm(
        tmp_path_factory.mktemp("decoder"), ["alpha", "beta", "gamma", "alice", "bob", "smith", "paris", "rome"]
    )


@pytest.fixture(scope="session")
def text_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    write_jsonl(folder / "train.jsonl", planted_texts(192, seed=1))
    write_jsonl(folder / "validation.jsonl", planted_texts(60, seed=2))
    write_jsonl(folder / "test.jsonl", planted_texts(60, seed=3))
    return folder


@pytest.fixture(scope="session")
def ner_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    write_conll(folder / "train.conll", planted_ner(160, seed=1))
    write_conll(folder / "validation.conll", planted_ner(40, seed=2))
    write_conll(folder / "test.conll", planted_ner(40, seed=3))
    return folder


def tiny_overrides(backbone: Path, data: Path, task: str = "text-classification", **train) -> list[str]:
    """--set overrides for a fast run of the tiny backbone on a planted data folder."""
    ext = "jsonl" if task == "text-classification" else "conll"
    base = {"epochs": 8, "batch_size": 16, "lr": 3e-3, "head_lr": 3e-3, "warmup_ratio": 0.0, "log_every": 1}
    base.update(train)
    return [
        f"task={task}",
        f"model.name_or_path={backbone}",
        f"data.root={data}",
        f"data.train=train.{ext}",
        f"data.validation=validation.{ext}",
        f"data.test=test.{ext}",
        *(f"train.{k}={v}" for k, v in base.items()),
    ]


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"real data not found at {DATA_ROOT} (set CAVEAT_DATA)")
    return DATA_ROOT


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
    """The NER run with its span calibration (SpanCalibration)."""
    run = tmp_path_factory.mktemp("service") / "ner-calibrated"
    shutil.copytree(ner_run, run)
    with one_thread():
        calibrate_run(run, target_risk=0.2, delta=0.1)
    return run
