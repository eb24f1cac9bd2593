"""Prediction-rejection metrics against a continuous quality, for outputs that are not right or wrong.

Summaries have a ``quality`` ``(N,)`` each (e.g. ROUGE-L F against the reference, higher = better), not
an error flag. Conventions as in :mod:`caveat.generate.metrics`: ``scores`` are ``(N,)`` uncertainty,
higher = less trustworthy, kept lowest first; ties in ``scores`` are broken uniformly at random in
expectation, so a constant score has PRR exactly 0. :func:`prr_quality` on ``quality = 1 - errors`` is
:func:`caveat.generate.metrics.prr`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import _scores
from caveat.generate.metrics import _expected_kept_mean, _percentile_bootstrap
from caveat.uncertainty.errors import ArrayError


def _quality(quality, n: int) -> np.ndarray:
    """``(N,)`` finite float64 quality, else ``ArrayError``."""
    q = np.asarray(quality, dtype=np.float64)
    if q.shape != (n,):
        raise ArrayError(f"quality must have shape ({n},), one entry per output; got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ArrayError("quality contains NaN or inf; give every output a finite quality (e.g. ROUGE-L 0)")
    return q


def _varies(q: np.ndarray, what: str) -> None:
    if np.ptp(q) == 0:
        raise DataError(
            f"{what} is undefined: all {len(q)} outputs have the same quality ({q[0]:g}), so the oracle "
            "rejects no better than chance; evaluate on more examples or another quality measure"
        )


def prr_quality(scores: np.ndarray, quality: np.ndarray) -> float:
    """Prediction-rejection ratio against a continuous quality (higher = better), e.g. ROUGE-L.

    Malinin, Ragni, Knill & Gales (2017), "Incorporating Uncertainty into Deep Learning for Spoken
    Language Assessment", ACL; for generation Malinin & Gales (2021), ICLR, and lm-polygraph's
    ``PredictionRejectionArea`` normalised as in its benchmarks (Vashurin et al. 2025, TACL).
    Keep the ``n`` least uncertain outputs (lowest score first), n = N..1, i.e. rejection rates
    ``r = 1 - n / N`` = 0, 1/N, ..., (N-1)/N; ``Q(n)`` is the mean quality of the kept ones. The area
    under that rejection curve is ``AUC = (1/N) sum_{n=1..N} Q(n)`` and::

        PRR = (AUC_score - AUC_random) / (AUC_oracle - AUC_random)

    ``AUC_random`` = ``mean(quality)`` (the exact expectation of ``Q(n)`` under a random order, which
    lm-polygraph estimates from 1000 shuffles) and ``AUC_oracle`` the area under ``scores = -quality``.
    1 = oracle, 0 = random (a constant score gives exactly 0), < 0 = worse than random. The score
    ``+quality`` (best outputs rejected first) gives ``-1`` when the qualities are symmetric about their
    mean (binary with half right, or evenly spread), otherwise
    ``-sum_n w_n d_n / sum_n d_n`` with ``d_n = T(n) - mean``, ``T(n)`` the mean of the ``n`` best and
    ``w_n = n / (N - n)``, n = 1..N-1 (e.g. quality ``[1, 0, 0]`` gives -0.8). PRR is invariant to
    affine rescaling ``a * quality + b`` with a > 0, so lm-polygraph's min-max normalisation of the
    quality changes nothing. Ties in ``scores`` are broken in expectation (module docstring).

    Parameters
    ----------
    scores : (N,) uncertainty, higher = less trustworthy; quality : (N,) float, higher = better.

    Returns
    -------
    float <= 1.

    Raises
    ------
    DataError
        Every output has the same quality (the oracle equals random; PRR is 0/0).
    """
    s = _scores(scores)
    q = _quality(quality, len(s))
    _varies(q, "PRR")
    mean = q.mean()
    area = _expected_kept_mean(s, q).mean()
    oracle = _expected_kept_mean(-q, q).mean()
    return float((area - mean) / (oracle - mean))


def quality_bootstrap_interval(
    fn: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    quality: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``fn(scores, quality)`` (e.g. :func:`prr_quality`), resampling outputs.

    As :func:`bootstrap_interval`, with a continuous ``quality`` (N,) instead of errors: a draw whose
    outputs all have the same quality is redrawn (PRR is undefined on it), so the interval is conditional
    on the quality varying; after ``100 * n_boot`` draws the call gives up.

    Raises
    ------
    DataError
        Every output has the same quality, or too few resamples vary.
    ConfigError
        Bad ``n_boot`` or ``level``.
    """
    s = _scores(scores)
    q = _quality(quality, len(s))
    _varies(q, "a bootstrap interval")
    return _percentile_bootstrap(
        fn,
        s,
        q,
        usable=lambda t: bool(np.ptp(t) > 0),
        n_boot=n_boot,
        level=level,
        seed=seed,
        failure=f"{len(s)} outputs had more than one quality value; evaluate on more examples",
    )


def quality_metrics(
    scores: np.ndarray,
    quality: np.ndarray,
    *,
    coverages: Sequence[float] = (0.5, 0.8),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Every selective-generation metric of one uncertainty score against a continuous quality, JSON-ready.

    Parameters
    ----------
    scores : (N,) uncertainty; quality : (N,) float, higher = better (e.g. ROUGE-L F).
    coverages : fractions in (0, 1] for ``quality_at``.
    n_boot, seed : for the 95% percentile-bootstrap interval (:func:`quality_bootstrap_interval`).

    Returns
    -------
    dict
        ``n``, ``mean_quality``; ``prr`` (:func:`prr_quality`) and ``prr_ci`` ``[lo, hi]``; and
        ``quality_at`` ``{"0.5": ..., "0.8": ...}``, the mean quality of the ``ceil(c * N)`` most
        confident outputs (ties in expectation, as PRR).
    """
    s = _scores(scores)
    q = _quality(quality, len(s))
    _varies(q, "selective-generation metrics")
    kept = _expected_kept_mean(s, q)  # (N,)
    at = {}
    for c in coverages:
        if not 0 < c <= 1:
            raise ConfigError(f"coverage must lie in (0, 1]; got {c!r}. E.g. 0.8 keeps the 80% most confident")
        at[f"{c:g}"] = float(kept[int(np.ceil(c * len(s) - 1e-9)) - 1])  # 1e-9: 0.3 * 10
    return {
        "n": len(s),
        "mean_quality": float(q.mean()),
        "prr": prr_quality(s, q),
        "prr_ci": list(quality_bootstrap_interval(prr_quality, s, q, n_boot=n_boot, seed=seed)),
        "quality_at": at,
    }


def quality_coverage(scores: np.ndarray, quality: np.ndarray, points: int = 21) -> dict[str, list[float]]:
    """The mean quality of the kept outputs on an even grid of ``points`` coverages from 0 to 1, for plots.

    As :func:`risk_coverage`, with the mean quality of the ``max(1, ceil(c * N))`` most confident
    outputs in place of their error rate; its mean over a fine grid approaches the area PRR uses.

    Returns
    -------
    dict with ``coverage`` and ``quality``: lists of ``points`` floats.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ConfigError(f"points must be an integer >= 2; got {points!r}. Use 21 (steps of 0.05)")
    s = _scores(scores)
    kept = _expected_kept_mean(s, _quality(quality, len(s)))  # (N,)
    grid = np.linspace(0.0, 1.0, points)  # (points,)
    answered = np.maximum(1, np.ceil(grid * len(s) - 1e-9)).astype(np.int64)
    return {"coverage": grid.tolist(), "quality": kept[answered - 1].tolist()}
