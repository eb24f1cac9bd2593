"""Errors of the uncertainty stage. Each message names the offending value and the fix."""

import numpy as np

from caveat.errors import CaveatError


class NotFittedError(CaveatError, RuntimeError):
    """A method was used before ``fit`` (e.g. ``transform`` or ``score`` on a fresh object)."""


class ArrayError(CaveatError, ValueError):
    """An array has the wrong shape, dtype or values (e.g. probabilities that do not sum to 1)."""


def check_features(x, dim: int | None = None, *, error: type[ArrayError] = ArrayError) -> np.ndarray:
    """Penultimate features as a finite float64 ``(N, D)`` array (``D = dim`` when given), else ``error``."""
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2:
        raise error(f"features must have shape (N, D); got shape {f.shape}. Use Predictions.features")
    if dim is not None and f.shape[1] != dim:
        raise error(f"features must have D = {dim} columns as in fit; got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise error("features contain NaN or inf; check the model outputs (e.g. fp16 overflow)")
    return f
