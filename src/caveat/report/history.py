"""Training history of a run: the validation metric per evaluation (``caveat.json``) joined with the
training loss logged to TensorBoard under ``RUN/logs/train``."""

from __future__ import annotations

import logging
from pathlib import Path

from caveat.models.rundir import Run
from caveat.training.validation_metric import stored_metric

log = logging.getLogger(__name__)


def logged_losses(log_dir: Path) -> dict[int, float]:
    """``step -> train/loss`` from the TensorBoard events in ``log_dir``; {} when there are none.

    A resumed run appends a second events file; for a step logged twice the later value wins.
    """
    if not log_dir.is_dir() or not any(log_dir.glob("events.out.tfevents.*")):
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:  # tensorboard is a dependency, but the report should not need it
        log.warning("tensorboard is not installed; the report shows no training loss")
        return {}
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    chatty = logging.getLogger("tensorboard")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # it logs at INFO when it reaches the end of each events file
    try:
        events.Reload()
    finally:
        chatty.setLevel(level)
    if "train/loss" not in events.Tags().get("scalars", []):
        return {}
    return {e.step: float(e.value) for e in events.Scalars("train/loss")}


def training_history(run: Run) -> tuple[str, list[dict]]:
    """``(metric name, rows)``: per validation, its ``epoch``, ``step``, ``train_loss`` (mean of the
    losses logged since the previous validation; None when not logged) and ``validation``."""
    training = run.info.get("training", {})
    history = training.get("history", [])
    metric = stored_metric(training, run.task) if history else "metric"
    losses = logged_losses(run.path / "logs" / "train")
    rows, previous = [], 0
    for row in history:
        step = int(row["step"])
        window = [v for s, v in losses.items() if previous < s <= step]
        rows.append(
            {
                "epoch": float(row["epoch"]),
                "step": step,
                "train_loss": sum(window) / len(window) if window else None,
                "validation": row.get(f"validation_{metric}"),
            }
        )
        previous = step
    return metric, rows
