"""Where a run keeps its fitted calibration: the summary under ``calibration`` in ``caveat.json`` and
the arrays (Mahalanobis, Laplace, the calibration split's scores; a NER run: its spans' scores) in
``calibration.safetensors``."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file, save_file

from caveat.errors import RunDirError
from caveat.io import atomic_file, read_json, write_json_atomic
from caveat.models.rundir import RUN_FILE, Run

ARRAYS_FILE = "calibration.safetensors"
CALIBRATION_SCORES = "scores.calibration"  # key in ARRAYS_FILE: the ``score`` of each calibration input (of each
# target text when calibrated with --target; a NER run: of each predicted span): the drift alarm's reference


def save_calibration(run: Run, summary: dict) -> dict:
    """Store ``summary`` under ``calibration`` in the run's caveat.json (atomically); returns it."""
    info = read_json(run.path / RUN_FILE)
    info["calibration"] = summary
    write_json_atomic(run.path / RUN_FILE, info)
    run.info["calibration"] = summary
    return summary


def save_arrays(run: Run, arrays: dict[str, np.ndarray]) -> None:
    """Write ``calibration.safetensors`` atomically (a reader never sees half a file), readable as any other
    file of the run (safetensors alone would leave it 0600)."""
    with atomic_file(run.path / ARRAYS_FILE) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))


def load_arrays(run: Run) -> dict[str, np.ndarray]:
    """The arrays of a calibrated run; a RunDirError that says how to refit them when missing."""
    if not (run.path / ARRAYS_FILE).is_file():
        raise RunDirError(f"{run.path} lacks {ARRAYS_FILE}; calibrate the run again (caveat calibrate {run.path})")
    return load_file(str(run.path / ARRAYS_FILE))


def stored_arrays(run: Run) -> dict[str, np.ndarray]:
    """The run's calibration arrays, or none (``{}``) when it has no ``calibration.safetensors``: a NER run
    calibrated before its drift reference was stored."""
    return load_arrays(run) if (run.path / ARRAYS_FILE).is_file() else {}


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``prefix.`` with the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{prefix}.")}
