"""Mahalanobis distance to the nearest class mean in feature space (Lee et al. 2018)."""

from __future__ import annotations

import numpy as np

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError, check_features

SHRINKAGES = ("ledoit-wolf", "none")


def _features(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    return check_features(x, dim, error=ArrayError)


class Mahalanobis:
    """Class-conditional Gaussians with one shared (tied) covariance; the score is the squared
    Mahalanobis distance to the nearest class mean (higher = more uncertain / more out-of-distribution).

    Lee, Lee, Lee & Shin (2018), "A Simple Unified Framework for Detecting Out-of-Distribution
    Samples and Adversarial Attacks", NeurIPS. (Without their input pre-processing and layer
    ensemble: this is the final-feature version used by most later work.)

    Parameters
    ----------
    shrinkage : {"ledoit-wolf", "none"}, default "ledoit-wolf"
        Covariance estimator: Ledoit & Wolf (2004) shrinkage keeps it well conditioned when D is large
        next to N; "none" is the maximum-likelihood (biased) estimate.
    ridge : float >= 0, default 1e-6
        Added to the diagonal, relative to the mean variance, so the inverse always exists.
    """

    def __init__(self, *, shrinkage: str = "ledoit-wolf", ridge: float = 1e-6) -> None:
        if shrinkage not in SHRINKAGES:
            raise ConfigError(f"shrinkage must be one of {SHRINKAGES}; got {shrinkage!r}")
        if not ridge >= 0:
            raise ConfigError(f"ridge must be >= 0; got {ridge!r}. Use 1e-6")
        self.shrinkage, self.ridge = shrinkage, float(ridge)
        self.means: np.ndarray | None = None  # (K, D), one row per class seen in fit
        self.precision: np.ndarray | None = None  # (D, D), inverse of the tied covariance
        self.classes: np.ndarray | None = None  # (K,) class ids, in the order of ``means``

    @property
    def is_fitted(self) -> bool:
        return self.means is not None

    def fit(self, features: np.ndarray, labels: np.ndarray) -> Mahalanobis:
        """Estimate class means and the tied covariance from in-distribution features.

        Parameters
        ----------
        features : (N, D)
        labels : (N,) integer class ids (classes absent from ``labels`` get no mean).

        Returns
        -------
        self
        """
        x = _features(features)
        y = np.asarray(labels)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ArrayError(f"labels must be integer class ids of shape ({len(x)},); got {y.dtype} {y.shape}")
        if len(x) < 2:
            raise ArrayError(f"need at least 2 feature rows to estimate a covariance; got {len(x)}")
        classes, index = np.unique(y, return_inverse=True)
        counts = np.bincount(index)  # (K,)
        means = np.zeros((len(classes), x.shape[1]))
        np.add.at(means, index, x)
        means /= counts[:, None]  # (K, D)
        centered = x - means[index]  # (N, D): every row about its own class mean
        if self.shrinkage == "ledoit-wolf":
            from sklearn.covariance import LedoitWolf

            cov = LedoitWolf(assume_centered=True).fit(centered).covariance_
        else:
            cov = centered.T @ centered / len(x)  # (D, D)
        cov = cov + self.ridge * max(np.trace(cov) / len(cov), 1e-12) * np.eye(len(cov))
        self.precision = np.linalg.inv(cov)
        self.precision = (self.precision + self.precision.T) / 2  # exact symmetry for the quadratic form
        self.means, self.classes = means, classes
        return self

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to each class mean: ``(N, D) -> (N, K)``."""
        if not self.is_fitted:
            raise NotFittedError("Mahalanobis is not fitted; call fit(calibration features, labels) first")
        x = _features(features, self.means.shape[1])
        # (x - mu)' P (x - mu) expanded, so memory is (N, K) rather than (N, K, D)
        xp = x @ self.precision  # (N, D)
        quad_x = np.einsum("nd,nd->n", xp, x)  # (N,)
        quad_mu = np.einsum("kd,de,ke->k", self.means, self.precision, self.means)  # (K,)
        d2 = quad_x[:, None] - 2.0 * xp @ self.means.T + quad_mu[None, :]  # (N, K)
        return np.maximum(d2, 0.0)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Minimum over classes of the squared Mahalanobis distance; ``(N, D) -> (N,)``."""
        return self.distances(features).min(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as plain contiguous arrays, ready for ``safetensors.numpy.save_file``."""
        if not self.is_fitted:
            raise NotFittedError("Mahalanobis is not fitted; call fit(calibration features, labels) first")
        return {
            "means": np.ascontiguousarray(self.means),
            "precision": np.ascontiguousarray(self.precision),
            "classes": np.ascontiguousarray(self.classes.astype(np.int64)),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Mahalanobis:
        """Rebuild a fitted object from :meth:`state` (e.g. after ``safetensors.numpy.load_file``)."""
        missing = {"means", "precision", "classes"} - set(state)
        if missing:
            raise ArrayError(f"Mahalanobis state lacks {sorted(missing)}; save it with state() and refit if lost")
        means, precision = np.asarray(state["means"], np.float64), np.asarray(state["precision"], np.float64)
        classes = np.asarray(state["classes"])
        d = means.shape[1] if means.ndim == 2 else -1
        if precision.shape != (d, d) or classes.shape != (len(means),):
            raise ArrayError(
                f"inconsistent Mahalanobis state: means {means.shape}, precision {precision.shape}, "
                f"classes {classes.shape}; expected (K, D), (D, D), (K,)"
            )
        m = cls()
        m.means, m.precision, m.classes = means, precision, classes
        return m
