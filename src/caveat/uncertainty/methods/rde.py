"""Robust density estimation (RDE): RBF kernel PCA of the features, then a minimum-covariance-determinant
Gaussian there, scored by the squared Mahalanobis distance (higher = farther from the fitting data).

Yoo, Kim, Jang & Kwak (2022), "Detection of Adversarial Examples in Text Classification: Benchmark and Baseline
via Robust Density Estimation", Findings of ACL; used to detect misclassifications by Vazhentsev et al. (2022),
"Uncertainty Estimation of Transformer Predictions for Misclassification Detection", ACL, and offered by
lm-polygraph for generated text. MCD: Rousseeuw (1984), fitted with the FAST-MCD algorithm of Rousseeuw & Van
Driessen (1999) through scikit-learn's ``MinCovDet``: the covariance of the subset of about half the rows whose
covariance has the smallest determinant (then reweighted), so a minority of outlying fitting rows does not
inflate it as it inflates the plain covariance of :class:`~caveat.uncertainty.methods.mahalanobis.Mahalanobis`.

**Kernel PCA** (Schölkopf, Smola & Müller 1998). Features are first standardised with the fitting rows' mean and
standard deviation per dimension, so the RBF kernel ``K_ij = exp(-gamma |x_i - x_j|^2)`` (``gamma`` default
``1 / D``, scikit-learn's) does not depend on the hidden states' scale. On the N fitting rows the kernel is
doubly centred, ``Kc = K - colmean(K) - rowmean(K) + mean(K)``, and its top ``k`` eigenpairs ``(lambda_j, v_j)``
kept. A new row ``x`` with kernel row ``k(x)`` (1, N) maps to ``z_j = (k(x) - colmean(K)) . v_j / sqrt(lambda_j)``:
scikit-learn's ``KernelPCA.transform``, up to each component's sign (its centring also subtracts ``mean(k(x))``
and adds ``mean(K)``, constants along the row, and ``Kc 1 = 0`` makes every ``v_j`` with ``lambda_j > 0``
orthogonal to constants). The fitting rows are kept (the kernel needs them), so the state holds N x D numbers.

``k`` is ``n_components`` (default 100) capped at ``(N - 1) // 2`` and at the number of positive eigenvalues, so
that the MCD subset of about half the rows still spans the ``k`` dimensions. The kernel is N x N and its
eigendecomposition costs O(N^3), so ``fit`` keeps at most ``max_rows`` rows (default 2,000: a 32 MB kernel, seconds
to decompose), a seeded subsample; beyond that more rows sharpen a density estimate little.
"""

from __future__ import annotations

import numpy as np

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError

STATE_KEYS = ("x_fit", "mean", "scale", "gamma", "col_mean", "projection", "location", "precision")


class RobustDensity:
    """RBF kernel PCA + MCD Gaussian; ``fit(features)`` then ``score(features)`` (module docstring: the maths).

    Parameters
    ----------
    n_components : int >= 1, default 100
        Kernel principal components kept (capped as the module docstring says).
    gamma : float > 0 or None, default None
        RBF width on the standardised features; None: ``1 / D``.
    seed : int, default 0
        Seed of MCD's random starting subsets, and of the subsample beyond ``max_rows``.
    max_rows : int >= 5, default 2000
        Most fitting rows kept (a seeded subsample of larger inputs; the module docstring says why).
    """

    def __init__(
        self, *, n_components: int = 100, gamma: float | None = None, seed: int = 0, max_rows: int = 2000
    ) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ConfigError(f"n_components must be an integer >= 1; got {n_components!r}. E.g. 100")
        if gamma is not None and not (np.isfinite(gamma) and gamma > 0):
            raise ConfigError(f"gamma must be a finite number > 0, or None for 1 / D; got {gamma!r}")
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 5:
            raise ConfigError(f"max_rows must be an integer >= 5; got {max_rows!r}. E.g. 2000")
        self.n_components, self.gamma, self.seed, self.max_rows = int(n_components), gamma, int(seed), int(max_rows)
        self.arrays: dict[str, np.ndarray] | None = None

    @property
    def is_fitted(self) -> bool:
        return self.arrays is not None

    def _kernel(self, z: np.ndarray) -> np.ndarray:
        """RBF kernel rows of already standardised ``z`` (M, D) against the fitting rows: (M, N)."""
        fit = self.arrays["x_fit"]
        sq = (z**2).sum(1)[:, None] + (fit**2).sum(1)[None, :] - 2.0 * z @ fit.T  # (M, N) squared distances
        return np.exp(-float(self.arrays["gamma"][0]) * np.clip(sq, 0.0, None))

    def _project(self, x: np.ndarray) -> np.ndarray:
        """Kernel principal components of (M, D) rows: (M, k)."""
        a = self.arrays
        return (self._kernel((x - a["mean"]) / a["scale"]) - a["col_mean"][None, :]) @ a["projection"]

    def fit(self, features: np.ndarray) -> RobustDensity:
        """Fit on (N, D) in-distribution features; returns self."""
        from sklearn.covariance import MinCovDet

        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 5 or not np.isfinite(x).all():
            raise ArrayError(f"fit takes finite (N, D) features with N >= 5; got shape {x.shape}")
        if len(x) > self.max_rows:
            x = x[np.sort(np.random.default_rng(self.seed).permutation(len(x))[: self.max_rows])]
        mean, std = x.mean(0), x.std(0)
        scale = np.where(std > 1e-8, std, 1.0)
        gamma = 1.0 / x.shape[1] if self.gamma is None else float(self.gamma)
        z = (x - mean) / scale
        self.arrays = {"x_fit": z, "mean": mean, "scale": scale, "gamma": np.array([gamma])}
        kernel = self._kernel(z)  # (N, N)
        col_mean, all_mean = kernel.mean(0), kernel.mean()
        centred = kernel - col_mean[None, :] - kernel.mean(1, keepdims=True) + all_mean
        values, vectors = np.linalg.eigh(centred)  # ascending
        values, vectors = values[::-1], vectors[:, ::-1]
        positive = int((values > 1e-10 * max(values[0], 1e-300)).sum())
        k = min(self.n_components, (len(x) - 1) // 2, positive)
        if k < 1:
            raise ArrayError(
                "the features' kernel has no positive principal component: the fitting rows are all alike; fit on "
                "the hidden states of varied generations"
            )
        projection = vectors[:, :k] / np.sqrt(values[:k])  # (N, k)
        self.arrays.update(col_mean=col_mean, projection=projection)
        mcd = MinCovDet(random_state=self.seed).fit(centred @ projection)
        self.arrays.update(location=mcd.location_, precision=mcd.get_precision())
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance under the MCD Gaussian of the kernel components; ``(M, D) -> (M,)``."""
        if not self.is_fitted:
            raise NotFittedError("RobustDensity is not fitted; call fit(in-distribution features) first")
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.arrays["x_fit"].shape[1]:
            raise ArrayError(f"score takes (M, {self.arrays['x_fit'].shape[1]}) features; got shape {x.shape}")
        d = self._project(x) - self.arrays["location"]
        return np.einsum("mi,ij,mj->m", d, self.arrays["precision"], d)

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as plain contiguous arrays, ready for ``safetensors.numpy.save_file``."""
        if not self.is_fitted:
            raise NotFittedError("RobustDensity is not fitted; call fit(in-distribution features) first")
        return {k: np.ascontiguousarray(np.asarray(self.arrays[k], dtype=np.float64)) for k in STATE_KEYS}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> RobustDensity:
        """Rebuild a fitted object from :meth:`state` (e.g. after ``safetensors.numpy.load_file``)."""
        missing = sorted(set(STATE_KEYS) - set(state))
        if missing:
            raise ArrayError(f"RobustDensity state lacks {missing}; save it with state() and refit if lost")
        a = {k: np.asarray(state[k], dtype=np.float64) for k in STATE_KEYS}
        n, d = a["x_fit"].shape if a["x_fit"].ndim == 2 else (-1, -1)
        k = a["projection"].shape[1] if a["projection"].ndim == 2 else -1
        want = {"mean": (d,), "scale": (d,), "col_mean": (n,), "projection": (n, k), "location": (k,)}
        want.update(precision=(k, k), gamma=(1,))
        bad = {name: a[name].shape for name, shape in want.items() if a[name].shape != shape}
        if n < 0 or k < 0 or bad:
            raise ArrayError(f"inconsistent RobustDensity state (x_fit {a['x_fit'].shape}): {bad}; refit it")
        out = cls(n_components=k, gamma=float(a["gamma"][0]))
        out.arrays = a
        return out
