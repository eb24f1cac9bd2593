"""Graph-based black-box uncertainty of K sampled answers (Lin, Trivedi & Sun 2024).

Lin, Trivedi & Sun (2024, "Generating with Confidence: Uncertainty Quantification for Black-box Large
Language Models", TMLR) treat the K sampled answers as the nodes of a graph whose edge weights are their
pairwise similarities, and read uncertainty off that graph, without the model's probabilities:

- ``W`` (K, K): symmetric weighted adjacency, entries in [0, 1], ``W_ii = 1``
  (:meth:`caveat.generate.semantic.EmbeddingEquivalence.similarity` and its NLI twin build it);
- ``D = diag(W 1)``: the degrees, each in [1, K];
- ``L = I - D^{-1/2} W D^{-1/2}``: the normalised Laplacian, eigenvalues ``0 = λ_1 <= ... <= λ_K <= 2``.

Three scores, higher = answers less alike = more uncertain:

- :func:`eigv` ``U_EigV = sum_k max(0, 1 - λ_k)``: a soft count of meaning clusters (with c disconnected
  cliques, L has eigenvalue 0 c times and 1 otherwise, so U_EigV = c);
- :func:`degree` ``U_Deg = 1 - trace(D) / K^2``: one minus the mean similarity over all ordered pairs;
- :func:`eccentricity` ``U_Ecc``: how far the answers' spectral embeddings lie from their centre.
"""

from __future__ import annotations

import numpy as np

from caveat.errors import ConfigError

# The spectral embedding for U_Ecc keeps the eigenvectors of L whose eigenvalue is below 0.9, the cut-off of
# lm-polygraph's Eccentricity (``thres=0.9``), which follows Lin et al.'s code. Past λ = 1 an eigenvector adds
# nothing to U_EigV either; 0.9 keeps a margin so that a near-clique's λ just under 1 does not count.
ECCENTRICITY_THRESHOLD = 0.9
_TOL = 1e-6  # tolerance on W's range, symmetry and diagonal: similarities are float32 model outputs


def check_adjacency(w: np.ndarray) -> np.ndarray:
    """``w`` as a (K, K) float64 array, after checking it is a similarity graph: square with K >= 1, finite,
    entries in [0, 1], symmetric and 1 on the diagonal (each answer is fully similar to itself)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ConfigError(f"a similarity graph is a (K, K) matrix with K >= 1; got shape {w.shape}")
    if not np.isfinite(w).all() or w.min() < -_TOL or w.max() > 1 + _TOL:
        raise ConfigError(
            f"similarities must be finite and lie in [0, 1]; got values in [{w.min():g}, {w.max():g}]. "
            "Clip cosine similarities to [0, 1]"
        )
    if not np.allclose(w, w.T, atol=_TOL):
        raise ConfigError("the similarity graph must be symmetric; average the two directions: (W + W.T) / 2")
    if not np.allclose(np.diag(w), 1.0, atol=_TOL):
        raise ConfigError("each answer's similarity to itself must be 1 (W_ii = 1); set the diagonal to 1")
    return np.clip((w + w.T) / 2, 0.0, 1.0)


def laplacian_spectrum(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (K,) ascending and eigenvectors (K, K), one per column, of ``L = I - D^-1/2 W D^-1/2``.

    The degrees are at least 1 (``W_ii = 1``), so ``D^-1/2`` always exists.
    """
    w = check_adjacency(w)
    inv_sqrt = 1.0 / np.sqrt(w.sum(axis=1))  # (K,) D^-1/2
    lap = np.eye(len(w)) - inv_sqrt[:, None] * w * inv_sqrt[None, :]  # (K, K)
    vals, vecs = np.linalg.eigh((lap + lap.T) / 2)  # symmetric: real eigenvalues, orthonormal eigenvectors
    return np.clip(vals, 0.0, 2.0), vecs  # L is positive semi-definite with spectrum in [0, 2]; clip rounding


def eigv(w: np.ndarray) -> float:
    """``U_EigV = sum_k max(0, 1 - λ_k)`` over the eigenvalues of the normalised Laplacian: 1 when every
    answer is fully similar to every other, c for c disconnected cliques, K when no two answers are alike."""
    vals, _ = laplacian_spectrum(w)
    return float(np.maximum(0.0, 1.0 - vals).sum())


def degree(w: np.ndarray) -> float:
    """``U_Deg = 1 - trace(D) / K^2 = 1 - mean_ij W_ij``: 0 when all answers are alike, ``1 - 1/K`` when none are."""
    w = check_adjacency(w)
    return float(1.0 - w.sum() / len(w) ** 2)


def eccentricity(w: np.ndarray, *, threshold: float = ECCENTRICITY_THRESHOLD) -> float:
    """``U_Ecc = ||V - 1 mean(V)||_F``: the norm of the centred spectral embeddings of the answers.

    ``V`` (K, k) holds the eigenvectors of L with eigenvalue below ``threshold`` (0.9: ``ECCENTRICITY_THRESHOLD``),
    one per column, so row j is answer j's embedding; U_Ecc is the L2 norm of the answers' distances to their
    mean embedding (Lin et al.'s ``||[v'_1, ..., v'_K]||_2``). It is 0 when all answers are alike and
    ``sqrt(c - 1)`` for c disconnected cliques; it does not depend on which basis ``eigh`` picks within a
    repeated eigenvalue (the norm is invariant under rotations of V's columns).
    """
    if not 0 < threshold <= 2:
        raise ConfigError(f"the eccentricity threshold must lie in (0, 2]; got {threshold!r}. E.g. 0.9")
    vals, vecs = laplacian_spectrum(w)
    emb = vecs[:, vals < threshold]  # (K, k); k >= 1 as λ_1 = 0
    centred = emb - emb.mean(axis=0, keepdims=True)  # (K, k)
    return float(np.linalg.norm(centred))
