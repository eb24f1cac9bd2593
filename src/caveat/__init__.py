"""caveat: fine-tune language models that are robust by construction and say when not to trust them.

``caveat.load(run)`` / ``caveat.train(config, out)`` give a ``caveat.Model``; see docs/api.md.

The public names load on first use (PEP 562), so that ``import caveat.X`` of one module, and the command
line's start-up, do not import torch and every workflow behind the facade.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from caveat._version import __version__

_EXPORTS = {
    "caveat.api": (
        "Model",
        "attack",
        "compare",
        "evaluate",
        "import_checkpoint",
        "load",
        "predict",
        "train",
        "tune",
    ),
    "caveat.calibration": ("Calibration", "SpanCalibration"),
    "caveat.config": ("RunConfig", "load_config"),
    "caveat.rows": ("Results", "Row"),
    "caveat.errors": ("CaveatError", "ConfigError", "DataError", "NotCalibratedError", "RunDirError"),
    "caveat.types": ("Predictions", "Task"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from caveat.api import (
        Model,
        attack,
        compare,
        evaluate,
        import_checkpoint,
        load,
        predict,
        train,
        tune,
    )
    from caveat.calibration import Calibration, SpanCalibration
    from caveat.config import RunConfig, load_config
    from caveat.errors import CaveatError, ConfigError, DataError, NotCalibratedError, RunDirError
    from caveat.rows import Results, Row
    from caveat.types import Predictions, Task


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'caveat' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = sorted([*_WHERE, "__version__"])
