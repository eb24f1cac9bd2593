"""A run's fitted calibration as typed objects: ``Calibration`` (text) and ``SpanCalibration`` (NER).

Loaded once with the run (``load_calibration``) and applied inside the inference engine; nobody
re-applies a temperature by hand. Fitting them on the calibration split is the workflow in ``run.py``
(``calibrate_run``), which this package's ``__init__`` does not import (it sits on a higher floor).
"""

from __future__ import annotations

from caveat.calibration.spans import SpanCalibration
from caveat.calibration.text import Calibration
from caveat.models.rundir import Run
from caveat.types import Task

RunCalibration = Calibration | SpanCalibration


def load_calibration(run: Run) -> RunCalibration | None:
    """The run's fitted calibration, or None when it was never calibrated."""
    if run.task is Task.TOKEN_CLASSIFICATION:
        return SpanCalibration.from_run(run)
    return Calibration.from_run(run)


__all__ = ["Calibration", "RunCalibration", "SpanCalibration", "load_calibration"]
