"""The run directory: ``model/`` (HF format + ``head.safetensors``), ``caveat.json``, ``metrics.json``, ``logs/``.

Loading reads safetensors and JSON only; nothing is ever unpickled.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from caveat._version import __version__
from caveat.config import RunConfig
from caveat.errors import RunDirError
from caveat.io import atomic_dir, read_json, write_json_atomic
from caveat.models.classifier import CaveatModel
from caveat.types import Task

RUN_FILE = "caveat.json"
MODEL_DIR = "model"
HEAD_FILE = "head.safetensors"
FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    return {
        "caveat": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


def save_model(run_dir: str | Path, model, tokenizer) -> None:
    """Write ``model/`` atomically: encoder via ``save_pretrained`` (safetensors), head, tokenizer."""
    from safetensors.torch import save_file

    with atomic_dir(Path(run_dir) / MODEL_DIR) as tmp:
        model.encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))


def write_run_info(
    run_dir: str | Path, *, config: RunConfig, labels: list[str], data: dict, training: dict | None = None
) -> dict:
    """Write ``caveat.json``: everything needed to use the model, in plain JSON."""
    info = {
        "format_version": FORMAT_VERSION,
        "task": config.task.value,
        "labels": labels,
        "config": config.model_dump(mode="json"),
        "data": data,
        "training": training or {},
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(Path(run_dir) / RUN_FILE, info)
    return info


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    info: dict
    config: RunConfig
    labels: list[str]

    @property
    def task(self) -> Task:
        return Task(self.info["task"])


def open_run(run_dir: str | Path) -> Run:
    """Read ``caveat.json`` of a run; errors say what is missing and how to make it."""
    path = Path(run_dir)
    if not (path / RUN_FILE).is_file():
        raise RunDirError(
            f"{str(path)!r} is not a caveat run (no {RUN_FILE}); create one with: caveat train CONFIG --out {path}"
        )
    info = read_json(path / RUN_FILE)
    if info.get("format_version") != FORMAT_VERSION:
        raise RunDirError(
            f"{path}/{RUN_FILE} has format_version {info.get('format_version')!r}; this caveat reads {FORMAT_VERSION}: "
            "retrain the run"
        )
    if not (path / MODEL_DIR / HEAD_FILE).is_file():
        raise RunDirError(
            f"{path}/{MODEL_DIR} is incomplete (training did not finish?); resume with: caveat train ... --out {path} "
            "--resume"
        )
    return Run(path=path, info=info, config=RunConfig.model_validate(info["config"]), labels=list(info["labels"]))


def load_model(run: Run):
    """``(tokenizer, CaveatModel)`` from a run, in eval mode, on the CPU."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_dir = run.path / MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = AutoModel.from_pretrained(model_dir)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    cfg = run.config.model
    model = CaveatModel(encoder, len(run.labels), task=run.task, pooling=cfg.pooling, head_dropout=cfg.head_dropout)
    model.head.load_state_dict(load_file(str(model_dir / HEAD_FILE)))
    return tokenizer, model.eval()
