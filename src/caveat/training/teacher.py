"""The teacher of ``train.objective=distill`` (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
Neural Network"): soft targets for the training rows from a run directory, computed once before training.

The teacher is a run: a deep ensemble (``caveat train --ensemble N``; its targets are the mean of its
members' ``softmax(logits / T)``) or a single model (its own ``softmax(logits / T)``). With
``train.distill.calibrated=true`` the targets are the teacher as caveat serves it instead: its calibrated
predictive ``p`` (the members pooled as ``caveat calibrate`` chose, divided by the ensemble's temperature; a
single run's logits divided by its temperature), softened as ``softmax(log p / T)``. An ensemble's raw mean is
over-confident on the rows its members were trained on, and a student distilled from it inherits that; the
calibrated predictive is what the ensemble's users see. Its labels must be the student's (any order: columns
are mapped by name) and its task text classification.

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

from caveat.calibration import load_calibration
from caveat.calibration.text import Calibration
from caveat.config import RunConfig
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.rundir import COMPLETE_FILE, MODEL_DIR, open_run
from caveat.types import Predictions, Split, Task

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


def teacher_calibration(members: Sequence[Predictor]) -> Calibration:
    """The calibration ``train.distill.calibrated=true`` reads: the teacher run's own, with an ensemble's
    temperature when the teacher is an ensemble.

    Raises
    ------
    ConfigError : the teacher was never calibrated, or is an ensemble calibrated before its pooled prediction
        had a temperature of its own.
    """
    run = members[0].run
    calibration = load_calibration(run)
    fix = f"run caveat calibrate {run.path} first, or set train.distill.calibrated=false"
    if calibration is None:
        raise ConfigError(f"train.distill.calibrated=true needs a calibrated teacher; {run.path} is not: {fix}")
    if len(members) > 1 and calibration.ensemble_temperature is None:
        raise ConfigError(
            f"train.distill.calibrated=true needs the ensemble's own temperature; {run.path} was calibrated before "
            f"ensembles had one: {fix}"
        )
    return calibration


def soft_targets(
    members: Sequence[Predictor],
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    temperature: float = 1.0,
    calibration: Calibration | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The teacher's soft targets for ``texts``: (N, C) float32, columns in the order of ``labels`` (matched by
    name to each member's labels). Without ``calibration``, the mean over ``members`` of
    ``softmax(logits / temperature)``; with it (``teacher_calibration``), ``softmax(log p / temperature)`` with
    ``p`` the calibrated predictive: the members' logits pooled as the calibration chose and divided by the
    ensemble's temperature, or one member's logits divided by the run's temperature. ``device``: where the
    members run (default: where they are, the CPU)."""
    logits = []  # per member (N, C), columns in the order of labels
    for member in members:
        columns = [member.labels.index(label) for label in labels]  # the member's column of each student label
        with _on_device(member, device):
            logits.append(member.predict(list(texts)).logits[0].astype(np.float64)[:, columns])
    if calibration is None:
        return np.mean([softmax(z / temperature, axis=-1) for z in logits], axis=0).astype(np.float32)
    if len(members) > 1:  # the ensemble as served: pooled as calibrate chose, then its own temperature
        stacked = np.stack(logits)  # (M, N, C)
        served = calibration.pool(Predictions(probs=softmax(stacked, axis=-1), logits=stacked))
    else:
        served = softmax(calibration.scale(logits[0]), axis=-1)
    return softmax(np.log(np.clip(served, 1e-300, None)) / temperature, axis=-1).astype(np.float32)


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
        calibration = teacher_calibration(members) if dcfg.calibrated else None
        texts = [ex.text for ex in split.examples]
        targets = soft_targets(
            members, texts, labels, temperature=dcfg.temperature, calibration=calibration, device=device
        )
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
        "calibration_temperature": _applied_temperature(calibration, len(members)),
        "seconds": round(seconds, 1),
    }


def _applied_temperature(calibration: Calibration | None, members: int) -> float | None:
    """The calibration temperature the targets were divided by (the ensemble's for an ensemble); None: raw."""
    if calibration is None:
        return None
    return calibration.ensemble_temperature if members > 1 else calibration.temperature


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
