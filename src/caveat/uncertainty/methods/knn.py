"""Distance to the k-th nearest training feature (Sun et al. 2022), an out-of-distribution score."""

from __future__ import annotations

import numpy as np

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError

CHUNK = 4096  # query rows per similarity block: CHUNK x bank floats at a time


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class NearestNeighbours:
    """Cosine distance of a feature to its k-th nearest neighbour among the training features
    (higher = more uncertain / more out-of-distribution).

    Sun, Ming, Zhu & Li (2022), "Out-of-distribution detection with deep nearest neighbors", ICML: features are
    normalised to unit length and an input is scored by its distance to the k-th nearest normalised training
    feature. Non-parametric, so unlike Mahalanobis it assumes no Gaussian class clusters. The bank of training
    features is stored at calibration (half precision: ``max_bank`` x D x 2 bytes); larger training sets are
    subsampled (seeded), which Sun et al. found costs little.

    Parameters
    ----------
    k : the neighbour whose distance is the score (1 = nearest).
    max_bank : the most training features kept.
    seed : the subsample's seed.
    """

    def __init__(self, *, k: int = 1, max_bank: int = 20000, seed: int = 0) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an integer >= 1 (the k-th nearest neighbour); got {k!r}. Use k=1")
        if isinstance(max_bank, bool) or not isinstance(max_bank, int) or max_bank < k:
            raise ConfigError(f"max_bank must be an integer >= k={k}; got {max_bank!r}. Use max_bank=20000")
        self.k, self.max_bank, self.seed = k, max_bank, seed
        self.bank: np.ndarray | None = None  # (B, D) unit rows, float16

    @property
    def is_fitted(self) -> bool:
        return self.bank is not None

    def fit(self, features: np.ndarray) -> NearestNeighbours:
        """Keep the (unit-length) training features, at most ``max_bank`` of them; ``features`` (N, D)."""
        x = np.asarray(features)
        if x.ndim != 2 or len(x) < self.k:
            raise ArrayError(f"features must have shape (N, D) with N >= k={self.k}; got {x.shape}")
        if not np.isfinite(x).all():
            raise ArrayError("features contain NaN or inf; check the model outputs")
        if len(x) > self.max_bank:
            x = x[np.sort(np.random.default_rng(self.seed).choice(len(x), self.max_bank, replace=False))]
        self.bank = _unit(x).astype(np.float16)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """``1 - cos`` to the k-th nearest training feature, ``(N, D) -> (N,)``, in [0, 2]."""
        if self.bank is None:
            raise NotFittedError("NearestNeighbours is not fitted; call fit(training features) first")
        q = np.asarray(features)
        if q.ndim != 2 or q.shape[1] != self.bank.shape[1]:
            raise ArrayError(f"features must have shape (N, {self.bank.shape[1]}); got {q.shape}")
        bank = self.bank.astype(np.float32)
        out = np.empty(len(q), dtype=np.float64)
        for i in range(0, len(q), CHUNK):
            sims = _unit(q[i : i + CHUNK]) @ bank.T  # (n, B)
            kth = np.partition(sims, -self.k, axis=1)[:, -self.k]  # the k-th largest similarity
            out[i : i + CHUNK] = 1.0 - kth
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as plain arrays (safetensors friendly; no pickle)."""
        if self.bank is None:
            raise NotFittedError("NearestNeighbours is not fitted; nothing to save")
        return {"bank": self.bank, "k": np.array([self.k])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> NearestNeighbours:
        """Rebuild a fitted object from :meth:`state`."""
        bank = np.asarray(state["bank"])
        k = int(np.asarray(state["k"]).reshape(-1)[0])
        if bank.ndim != 2 or not 1 <= k <= len(bank):
            raise ArrayError(f"stored bank {bank.shape} and k={k} do not fit together; refit (caveat calibrate)")
        out = cls(k=k, max_bank=max(len(bank), k))
        out.bank = bank.astype(np.float16)
        return out
