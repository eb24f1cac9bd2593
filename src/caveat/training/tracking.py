"""Experiment tracking through Accelerate's trackers: ``train.tracking`` is tensorboard, mlflow, wandb or none.

Nothing leaves the machine unless the user says so: TensorBoard writes ``RUN/logs/train``; MLflow a local file
store in ``RUN/logs/mlruns`` unless ``train.tracking_uri`` names another store or a server; W&B runs offline in
``RUN/logs/wandb`` unless ``WANDB_MODE`` is set. Accelerate starts, feeds and ends the trackers on the main
process only, so a run under torchrun is tracked once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from caveat.config import RunConfig, TrainConfig
from caveat.errors import ConfigError

PROJECT = "train"  # TensorBoard's folder under RUN/logs (the report reads it), MLflow's experiment, W&B's project
INSTALL = {  # tracker -> how to install the package it needs
    "mlflow": "pip install mlflow (or the lighter mlflow-skinny: pip install 'caveat[tracking]')",
    "wandb": "pip install wandb",
}


def check_tracking(tracking: str) -> None:
    """Raise a ConfigError naming the ``pip install`` when ``tracking`` needs a package that is not installed.

    Uses Accelerate's own availability test; unchecked, Accelerate would drop the tracker silently and log nothing.
    """
    from accelerate.utils import is_mlflow_available, is_wandb_available

    available = {"mlflow": is_mlflow_available, "wandb": is_wandb_available}
    if tracking in available and not available[tracking]():
        raise ConfigError(
            f"train.tracking={tracking} needs the {tracking} package, which is not installed: {INSTALL[tracking]}; "
            "or set train.tracking=tensorboard or none"
        )


def accelerator_options(train: TrainConfig, logs: Path) -> dict:
    """``Accelerator(**...)`` arguments for ``train.tracking``: ``log_with`` and ``project_dir`` (``logs``).

    Checks first that the tracker's package is installed (see ``check_tracking``).
    """
    check_tracking(train.tracking)
    return {"log_with": None if train.tracking == "none" else train.tracking, "project_dir": str(logs)}


def start_tracking(accelerator, config: RunConfig, out: Path) -> None:
    """Start the trackers of ``accelerator`` for the run in ``out``, with the flat config as hyperparameters."""
    tracking = config.train.tracking
    init_kwargs = {tracking: _INIT[tracking](config.train, out)} if tracking in _INIT else {}
    accelerator.init_trackers(PROJECT, config=flat_config(config), init_kwargs=init_kwargs)


def abort_tracking(accelerator) -> None:
    """End the trackers of a run that failed, so that the next run in this process can start its own.

    MLflow keeps one active run per process: one left open makes the next ``start_run`` fail.
    """
    if not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        if tracker.name == "mlflow":
            import mlflow

            mlflow.end_run(status="FAILED")
        tracker.finish()


def flat_config(section: BaseModel, prefix: str = "") -> dict[str, bool | int | float | str]:
    """The config as ``{"train.lr": 0.0001, "model.peft.r": 8, ...}``: the scalars every tracker takes as
    hyperparameters (lists, mappings and None as JSON text)."""
    dumped = section.model_dump(mode="json")
    flat: dict[str, bool | int | float | str] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            flat |= flat_config(value, f"{prefix}{name}.")
        else:
            plain = dumped[name]
            flat[prefix + name] = plain if isinstance(plain, (bool, int, float, str)) else json.dumps(plain)
    return flat


def _mlflow_kwargs(train: TrainConfig, out: Path) -> dict:
    """Point MLflow at ``train.tracking_uri`` or a local store in ``out/logs/mlruns``; the run is named after ``out``.

    Accelerate's MLflowTracker uses MLflow's process-wide tracking URI, so it is set here. MLflow 3 refuses
    file stores unless ``MLFLOW_ALLOW_FILE_STORE`` is true; a user's own setting of it is kept.
    """
    import mlflow

    uri = train.tracking_uri or (out / "logs" / "mlruns").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:  # a folder: MLflow's file store
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    return {"run_name": out.resolve().name}


def _wandb_kwargs(train: TrainConfig, out: Path) -> dict:
    """W&B writes in ``out/logs/wandb``, offline unless the user set ``WANDB_MODE`` (e.g. online)."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return {"dir": str(logs), "name": out.resolve().name} | (
        {} if os.environ.get("WANDB_MODE") else {"mode": "offline"}
    )


_INIT: dict[str, Callable[[TrainConfig, Path], dict]] = {"mlflow": _mlflow_kwargs, "wandb": _wandb_kwargs}
