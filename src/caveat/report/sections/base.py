"""Small helpers shared by the section functions."""

from __future__ import annotations

import math

import numpy as np

from caveat.io import read_json
from caveat.report.schema import Cell, Metric

MAX_POINTS = 400  # per plotted curve: enough for the eye, keeps report.json small
TEXT_LIMIT = 300  # characters of an example's text shown in tables


def num(x) -> Cell:
    """A JSON-able cell: numpy scalars become Python numbers, NaN becomes None."""
    if x is None or isinstance(x, (str, bool)):
        return x
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return None if math.isnan(x) else x


def metric(key: str, label: str, value, help: str = "") -> Metric:
    return Metric(key=key, label=label, value=num(value), help=help)


def downsample(x: np.ndarray, y: np.ndarray, k: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``k`` points of a curve, evenly spread over its index, always keeping both ends."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) > k:
        keep = np.unique(np.linspace(0, len(x) - 1, k).round().astype(int))
        x, y = x[keep], y[keep]
    return x.tolist(), y.tolist()


def shorten(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) so one long input cannot swamp a table."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def saved_metrics(run) -> dict:
    """The run's ``metrics.json`` (what ``caveat evaluate`` / ``caveat attack`` wrote), or {} when absent."""

    path = run.path / "metrics.json"
    return read_json(path) if path.is_file() else {}
