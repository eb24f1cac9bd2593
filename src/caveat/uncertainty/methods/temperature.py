"""Temperature scaling (Guo et al. 2017): one scalar T, fitted on the calibration split by NLL."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError


def _select(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``(N, C)`` or token ``(N, T, C)`` inputs to the positions that count: ``(K, C)``, ``(K,)``."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim not in (2, 3):
        raise ArrayError(
            f"logits must have shape (N, C) or, for tokens, (N, T, C); got shape {z.shape}. "
            "For stochastic (M, N, C) logits fit on one pass, e.g. logits[0]"
        )
    if y.shape != z.shape[:-1]:
        raise ArrayError(f"labels must have shape {z.shape[:-1]} to match logits {z.shape}; got {y.shape}")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != z.shape[:-1] or m.dtype != bool:
            raise ArrayError(f"mask must be a bool array of shape {z.shape[:-1]}; got {m.dtype} {m.shape}")
        z, y = z[m], y[m]  # (K, C), (K,): padding and cut-off words never count
    else:
        z, y = z.reshape(-1, z.shape[-1]), y.reshape(-1)  # (K, C), (K,)
    if len(y) == 0:
        raise ArrayError("no positions to fit on: logits are empty or the mask is all False")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[-1]:
        raise ArrayError(
            f"labels must be integer class ids in [0, {z.shape[-1]}); got values in [{y.min()}, {y.max()}]. "
            "Mask out ignored positions (e.g. -100) with mask="
        )
    if not np.all(np.isfinite(z)):
        raise ArrayError("logits contain NaN or inf; check the model outputs (e.g. fp16 overflow)")
    return z, y.astype(np.int64)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float, weights: np.ndarray | None = None) -> float:
    """(Weighted) mean negative log-likelihood of ``softmax(z / T)``; ``z`` (K, C), ``y`` (K,), ``weights`` (K,)."""
    s = z / temperature
    return float(np.average(logsumexp(s, axis=-1) - s[np.arange(len(y)), y], weights=weights))


class TemperatureScaling:
    """Divide logits by one temperature T > 0 fitted to minimise NLL on held-out data.

    Guo, Pleiss, Sun & Weinberger (2017), "On Calibration of Modern Neural Networks", ICML.
    T > 1 softens an over-confident model; the argmax (and so accuracy) never changes.

    Parameters
    ----------
    bounds : (low, high), default (0.05, 20)
        Search interval for T. The NLL is convex in 1/T, so a bounded 1-D search over log T finds
        the optimum; a warning says when it lands on a bound.

    Examples
    --------
    >>> ts = TemperatureScaling().fit(cal_logits, cal_labels)   # doctest: +SKIP
    >>> probs = softmax(ts.transform(test_logits), axis=-1)     # doctest: +SKIP
    """

    def __init__(self, *, bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        low, high = bounds
        if not 0 < low < high:
            raise ConfigError(f"temperature bounds must satisfy 0 < low < high; got {bounds!r}. Use (0.05, 20.0)")
        self.bounds = (float(low), float(high))
        self._temperature: float | None = None
        self.n_classes: int | None = None

    @property
    def temperature(self) -> float:
        """The fitted T (> 0)."""
        if self._temperature is None:
            raise NotFittedError("TemperatureScaling is not fitted; call fit(calibration logits, labels) first")
        return self._temperature

    @property
    def is_fitted(self) -> bool:
        return self._temperature is not None

    def fit(
        self,
        logits: np.ndarray,
        labels: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> TemperatureScaling:
        """Fit T on calibration data (never on test data).

        Parameters
        ----------
        logits : (N, C), or (N, T, C) for token tasks.
        labels : (N,) or (N, T) integer class ids; positions where ``mask`` is False may hold anything
            (e.g. -100).
        mask : (N, T) bool, optional; True for the positions that count (token tasks).
        sample_weight : (N,) non-negative weights, optional (text tasks): importance weights
            ``p_target(x) / p_source(x)`` fit T for a shifted target domain (Park et al. 2020,
            "Calibrated prediction with covariate shift via unsupervised domain adaptation", AISTATS).

        Returns
        -------
        self
        """
        z, y = _select(logits, labels, mask)
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if mask is not None or w.shape != y.shape or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
                raise ArrayError(
                    f"sample_weight must be ({len(y)},) finite, non-negative and not all 0, for (N, C) logits "
                    f"without a mask; got shape {w.shape}"
                )
        lo, hi = np.log(self.bounds)
        result = minimize_scalar(
            lambda log_t: _nll(z, y, float(np.exp(log_t)), w),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        t = float(np.exp(result.x))
        if min(abs(result.x - lo), abs(result.x - hi)) < 1e-3:
            warnings.warn(
                f"fitted temperature {t:.4g} lies on the search bound {self.bounds}; "
                "widen bounds= or check the calibration logits",
                stacklevel=2,
            )
        self._temperature, self.n_classes = t, z.shape[-1]
        return self

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Return ``logits / T``; any shape ``(..., C)`` with the C seen in ``fit``."""
        t = self.temperature
        z = np.asarray(logits)
        if z.ndim == 0 or z.shape[-1] != self.n_classes:
            raise ArrayError(f"logits must end in the {self.n_classes} classes seen in fit; got shape {z.shape}")
        return z / t

    def nll(self, logits: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None) -> float:
        """Mean NLL of the scaled logits (same layouts as ``fit``); for reports and checks."""
        z, y = _select(logits, labels, mask)
        return _nll(z, y, self.temperature)

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as plain arrays (safetensors/JSON friendly; no pickle)."""
        return {"temperature": np.array([self.temperature]), "n_classes": np.array([self.n_classes])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> TemperatureScaling:
        """Rebuild a fitted object from :meth:`state`."""
        ts = cls()
        t = float(np.asarray(state["temperature"]).reshape(-1)[0])
        if not t > 0:
            raise ArrayError(f"stored temperature must be > 0; got {t}. The state is corrupt: refit")
        ts._temperature, ts.n_classes = t, int(np.asarray(state["n_classes"]).reshape(-1)[0])
        return ts
