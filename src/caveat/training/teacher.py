"""The teacher of ``train.objective=distill`` (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
Neural Network"): soft targets for the training rows from a run directory, computed once before training.

The teacher is a run: a deep ensemble (``caveat train --ensemble N``; its targets are the mean of its
members' ``softmax(logits / T)``) or a single model (its own ``softmax(logits / T)``), always uncalibrated.
Its labels must be the student's (any order: columns are mapped by name) and its task text classification.

Several processes: each computes the targets of every training row on its own device (the rows are the same in
every process, and Accelerate hands each its share of each batch), so no targets travel between processes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from caveat.config import RunConfig
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.rundir import COMPLETE_FILE, MODEL_DIR, open_run
from caveat.types import Split, Task

log = logging.getLogger(__name__)

_SHOWN = 10  # labels listed in a message


def load_teacher(path: str | Path, labels: Sequence[str], *, batch_size: int | None = None) -> list[Predictor]:
    """The teacher's member predictors (one for a single run), after checking its task and labels.

    Parameters
    ----------
    path : the teacher's run directory (``train.distill.teacher``).
    labels : the student's labels; the teacher must have the same set, in any order.
    batch_size : inference batch size (default: the teacher's ``train.eval_batch_size``).

    Raises
    ------
    RunDirError : ``path`` is not a finished run.
    ConfigError : the teacher is not a text-classification run, or its labels differ from ``labels``.
    """
    run = open_run(path)
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            f"train.distill.teacher={str(path)!r} is a {run.task.value} run; distillation needs a "
            "text-classification teacher: train one on this data with caveat train CONFIG --ensemble N --out RUN"
        )
    missing, extra = sorted(set(labels) - set(run.labels)), sorted(set(run.labels) - set(labels))
    if missing or extra:
        raise ConfigError(
            f"train.distill.teacher={str(path)!r} has other labels than this run's training data: the teacher "
            f"lacks {_shown(missing)} and has {_shown(extra)} the data lacks; distil from a teacher trained on "
            "the same labels"
        )
    members = Predictor.from_run(run, batch_size=batch_size, calibrated=False).ensemble()
    for member in members[1:]:
        if sorted(member.labels) != sorted(run.labels):
            raise ConfigError(f"ensemble member {member.run.path} of {str(path)!r} has other labels than the run")
    return members


def soft_targets(
    members: Sequence[Predictor],
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    temperature: float = 1.0,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The mean over ``members`` of ``softmax(logits / temperature)`` for ``texts``: (N, C) float32, columns in
    the order of ``labels`` (matched by name to each member's labels). ``device``: where the members run
    (default: where they are, the CPU)."""
    total = np.zeros((len(texts), len(labels)), dtype=np.float64)  # (N, C)
    for member in members:
        columns = [member.labels.index(label) for label in labels]  # the member's column of each student label
        with _on_device(member, device):
            logits = member.predict(list(texts)).logits[0].astype(np.float64)  # (N, C_member)
        total += softmax(logits / temperature, axis=-1)[:, columns]
    return (total / len(members)).astype(np.float32)


def attach_soft_targets(
    rows: list[dict], split: Split, labels: Sequence[str], config: RunConfig, *, device=None
) -> dict:
    """Put ``train.distill.teacher``'s soft targets on each encoded training row (``row["soft_labels"]``, C floats
    in the order of ``labels``); returns what caveat.json records of the teacher (path, members, fingerprint)."""
    dcfg = config.train.distill
    if dcfg.teacher is None:
        raise ConfigError("train.objective=distill needs a teacher: set train.distill.teacher=RUN")
    started = time.perf_counter()
    # Loading the teacher initialises heads before reading their weights: on a forked RNG, so that the student's
    # dropout and shuffling draw what they would without a teacher (and a resumed run stays exact).
    with torch.random.fork_rng(devices=[]):
        members = load_teacher(dcfg.teacher, labels, batch_size=config.train.eval_batch_size)
        texts = [ex.text for ex in split.examples]
        targets = soft_targets(members, texts, labels, temperature=dcfg.temperature, device=device)
    for row, target in zip(rows, targets, strict=True):
        row["soft_labels"] = target.tolist()
    seconds = time.perf_counter() - started
    log.info("teacher %s: %d members, %d rows in %.1f s", dcfg.teacher, len(members), len(rows), seconds)
    return {
        "path": dcfg.teacher,
        "members": len(members),
        "fingerprint": teacher_fingerprint(members),
        "temperature": dcfg.temperature,
        "weight": dcfg.weight,
        "seconds": round(seconds, 1),
    }


def teacher_fingerprint(members: Sequence[Predictor]) -> str:
    """SHA-256 over each member's labels and the file its model directory writes last (``head.safetensors`` for
    caveat runs: small, and new whenever a member is retrained)."""
    digest = hashlib.sha256()
    for member in members:
        run = member.run
        digest.update(repr(run.labels).encode())
        with open(run.path / MODEL_DIR / COMPLETE_FILE[run.info.get("architecture", "caveat")], "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


class _OnDevice(nn.Module):
    """A model on an accelerator as the ``Predictor`` expects it: CPU tensors in, CPU outputs out."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.inner, self.device = model.to(device), device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.inner(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
        out.logits, out.features = out.logits.cpu(), out.features.cpu()
        return out


@contextmanager
def _on_device(predictor: Predictor, device) -> Iterator[Predictor]:
    """Run ``predictor``'s model on ``device`` inside the block, then put it back on the CPU (nothing to do on
    the CPU), so that the accelerator's memory is free for training."""
    if device is None or torch.device(device).type == "cpu":
        yield predictor
        return
    model = predictor.model
    predictor.model = _OnDevice(model, torch.device(device))
    try:
        yield predictor
    finally:
        predictor.model = model.cpu()


def _shown(labels: list[str]) -> str:
    if not labels:
        return "none"
    more = f", ... ({len(labels) - _SHOWN} more)" if len(labels) > _SHOWN else ""
    return ", ".join(map(repr, labels[:_SHOWN])) + more
