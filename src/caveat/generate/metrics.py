"""How well an uncertainty score tells wrong generated answers from right ones (selective answering).

Conventions as in :mod:`caveat.evaluation.calibration`: ``scores`` are ``(N,)`` uncertainty, higher =
less trustworthy, answered lowest first; ``errors`` are ``(N,)`` bool (or 0/1), True where the answer
is wrong. AUROC, AURC and accuracy at coverage come from that module; this one adds the
prediction-rejection ratio, percentile-bootstrap intervals and a plot-ready risk-coverage curve.

Ties. Generation scores are often discrete (e.g. the number of distinct sampled answers), so ties
matter. :func:`prr` and :func:`risk_coverage` break ties uniformly at random *in expectation*: the
risk after answering ``n`` inputs is its expected value over all orders of the tied inputs. That is
deterministic, independent of input order, equal to the plain curve when there are no ties, gives a
constant score PRR 0 and a score that separates errors perfectly PRR 1, however tied within groups.

A continuous quality (summaries: ROUGE-L against the reference) instead of errors is in
:mod:`caveat.generate.rejection`, on the same tie handling and bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import (
    _flags,
    _scores,
    accuracy_at_coverage,
    aurc,
    error_detection_auroc,
)

_MAX_DRAWS_PER_REPLICATE = 100  # bootstrap gives up after 100 * n_boot draws with one class only


def _check(scores, errors) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` finite float64 scores and ``(N,)`` bool errors, else ``ArrayError``."""
    s = _scores(scores)
    return s, _flags(errors, len(s), "errors")


def _two_classes(e: np.ndarray, what: str) -> None:
    if e.all() or not e.any():
        raise DataError(
            f"{what} is undefined: all {len(e)} answers are "
            f"{'wrong' if e.all() else 'right'}; evaluate on questions with both outcomes"
        )


def _expected_kept_mean(s: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``(N,)`` mean of ``values`` among the ``n`` most confident inputs, n = 1..N, ties in expectation.

    Inputs are kept lowest score first; inside a group of ``g`` tied inputs whose values sum to ``v_g``,
    keeping ``k`` of them adds ``k * v_g / g`` in expectation over the orders of the group.
    """
    n = len(s)
    order = np.argsort(s, kind="stable")
    s, v = s[order], values[order]  # (N,) sorted by score
    ends = np.r_[np.flatnonzero(np.diff(s)) + 1, n]  # (K,) inputs kept after each group of tied scores
    starts = np.r_[0, ends[:-1]]  # (K,)
    through = np.cumsum(v)[ends - 1]  # (K,) sum of values through each group
    before = np.r_[0.0, through[:-1]]  # (K,) sum before it
    size = ends - starts  # (K,)
    group = np.repeat(np.arange(len(ends)), size)  # (N,) group of the n-th kept input
    kept = np.arange(1, n + 1)  # (N,)
    k = kept - starts[group]  # (N,) how many of its group are kept
    return (before[group] + k * (through - before)[group] / size[group]) / kept


def _expected_risk(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``(N,)`` error rate among the ``n`` most confident inputs, n = 1..N, ties in expectation."""
    return _expected_kept_mean(s, e.astype(np.float64))


def prr(scores: np.ndarray, errors: np.ndarray) -> float:
    """Prediction-rejection ratio: the share of the oracle's gain over random rejection achieved.

    Malinin & Gales (2021), "Uncertainty Estimation in Autoregressive Structured Prediction", ICLR;
    as used for LLMs by lm-polygraph (Fadeeva et al. 2023, "LM-Polygraph: Uncertainty Estimation
    for Language Models", EMNLP demo).

    The curve is the risk-coverage curve: ``risk(n)``, the error rate among the ``n`` most
    confident answers (lowest score first), for n = 1..N, coverage ``n / N`` (rejection rate
    ``1 - n / N``). Its area is ``A = (1/N) sum_n risk(n)`` (the AURC) and::

        PRR = (A_random - A_score) / (A_random - A_oracle)

    with ``A_random`` = the error rate (the expected risk at every n under random order) and
    ``A_oracle`` the area when all right answers come first. 1 = oracle, 0 = random, < 0 worse than
    random. lm-polygraph integrates the mean quality ``1 - risk(n)`` of the kept answers instead
    and computes ``(Q_score - Q_random) / (Q_oracle - Q_random)`` with ``Q = 1 - A``: the same
    number (its ``A_random`` is a Monte-Carlo estimate of the error rate). Without ties ``A_score``
    is :func:`caveat.evaluation.calibration.aurc`; ties are broken in expectation (module docstring),
    where lm-polygraph's ``np.argsort`` breaks them by position.

    Parameters
    ----------
    scores : (N,) uncertainty; errors : (N,) bool, True where the answer is wrong.

    Returns
    -------
    float <= 1.

    Raises
    ------
    DataError
        All answers right or all wrong (the oracle equals random; PRR is 0/0).
    """
    s, e = _check(scores, errors)
    _two_classes(e, "PRR")
    rate = e.mean()
    area = _expected_risk(s, e).mean()
    oracle = _expected_risk(e.astype(np.float64), e).mean()  # errors as the score: right ones first
    return float((rate - area) / (rate - oracle))


def bootstrap_interval(
    fn: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    errors: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``fn(scores, errors)``, resampling questions.

    Efron & Tibshirani (1993), "An Introduction to the Bootstrap", ch. 13. Each replicate draws N
    questions with replacement (``numpy.random.default_rng(seed)``). A draw whose answers are all
    right or all wrong is *redrawn* (AUROC and PRR are undefined on it), so the interval is
    conditional on both outcomes occurring; after ``100 * n_boot`` draws the call gives up.

    Parameters
    ----------
    fn : callable ``(scores (N,), errors (N,) bool) -> float``, e.g. :func:`prr`.
    scores : (N,) uncertainty; errors : (N,) bool.
    n_boot : int >= 2, replicates; level : float in (0, 1); seed : int.

    Returns
    -------
    (lo, hi) : the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the replicates.

    Raises
    ------
    DataError
        ``errors`` has one class only, or too few resamples have both.
    ConfigError
        Bad ``n_boot`` or ``level``.
    """
    s, e = _check(scores, errors)
    _two_classes(e, "a bootstrap interval")
    return _percentile_bootstrap(
        fn,
        s,
        e,
        usable=lambda t: bool(t.any() and not t.all()),
        n_boot=n_boot,
        level=level,
        seed=seed,
        failure=f"{len(s)} answers ({int(e.sum())} wrong) had both outcomes; evaluate on more questions",
    )


def _percentile_bootstrap(
    fn: Callable[[np.ndarray, np.ndarray], float],
    s: np.ndarray,
    t: np.ndarray,
    *,
    usable: Callable[[np.ndarray], bool],
    n_boot: int,
    level: float,
    seed: int,
    failure: str,
) -> tuple[float, float]:
    """The loop both intervals share: resample ``(s, t)`` pairs, redraw where ``usable(t)`` fails."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ConfigError(f"n_boot must be an integer >= 2; got {n_boot!r}. Use 1000")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1); got {level!r}. Use 0.95 for a 95% interval")
    rng = np.random.default_rng(seed)
    n, values = len(s), []
    for _ in range(_MAX_DRAWS_PER_REPLICATE * n_boot):
        idx = rng.integers(0, n, size=n)  # (N,) examples of this replicate
        tb = t[idx]
        if not usable(tb):
            continue
        values.append(fn(s[idx], tb))
        if len(values) == n_boot:
            break
    else:
        raise DataError(f"only {len(values)} of {_MAX_DRAWS_PER_REPLICATE * n_boot} resamples of {failure}")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_auroc_difference(
    a: np.ndarray, b: np.ndarray, errors: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> dict:
    """AUROC(a) - AUROC(b) of two scores of the same answers, with a paired percentile-bootstrap interval (each
    replicate resamples questions and scores both on them, so the interval is of the difference itself).

    Returns ``{"difference", "ci": [lo, hi], "interval_clear_of_zero"}``."""
    a, e = _check(a, errors)
    b, _ = _check(b, errors)
    _two_classes(e, "an AUROC difference")
    both = np.stack([a, b], axis=1)  # (N, 2): resampled together

    def diff(s, t):
        return error_detection_auroc(s[:, 0], t) - error_detection_auroc(s[:, 1], t)

    lo, hi = _percentile_bootstrap(
        diff,
        both,
        e,
        usable=lambda t: bool(t.any() and not t.all()),
        n_boot=n_boot,
        level=level,
        seed=seed,
        failure="the paired AUROC difference",
    )
    return {"difference": float(diff(both, e)), "ci": [lo, hi], "interval_clear_of_zero": lo > 0}


def estimator_metrics(
    scores: np.ndarray,
    errors: np.ndarray,
    *,
    coverages: Sequence[float] = (0.5, 0.8),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Every selective-answering metric of one uncertainty score, as JSON-ready floats.

    Parameters
    ----------
    scores : (N,) uncertainty; errors : (N,) bool, True where the answer is wrong.
    coverages : fractions in (0, 1] for ``accuracy_at``.
    n_boot, seed : for the 95% percentile-bootstrap intervals (:func:`bootstrap_interval`; AUROC
        and PRR use the same resamples).

    Returns
    -------
    dict
        ``n``, ``error_rate``; ``auroc`` (:func:`~caveat.evaluation.calibration.error_detection_auroc`)
        and ``auroc_ci`` ``[lo, hi]``; ``prr`` and ``prr_ci``; ``aurc``
        (:func:`~caveat.evaluation.calibration.aurc`, tied scores answered together); and
        ``accuracy_at`` ``{"0.5": ..., "0.8": ...}`` (accuracy on the most confident answers,
        :func:`~caveat.evaluation.calibration.accuracy_at_coverage`, ties by input order).
    """
    s, e = _check(scores, errors)
    _two_classes(e, "error-detection metrics")
    boot = {"n_boot": n_boot, "seed": seed}
    return {
        "n": len(s),
        "error_rate": float(e.mean()),
        "auroc": error_detection_auroc(s, e),
        "auroc_ci": list(bootstrap_interval(error_detection_auroc, s, e, **boot)),
        "prr": prr(s, e),
        "prr_ci": list(bootstrap_interval(prr, s, e, **boot)),
        "aurc": aurc(s, e),
        "accuracy_at": {f"{c:g}": accuracy_at_coverage(s, ~e, c) for c in coverages},
    }


def risk_coverage(scores: np.ndarray, errors: np.ndarray, points: int = 21) -> dict[str, list[float]]:
    """The risk-coverage curve on an even grid of ``points`` coverages from 0 to 1, for plots.

    The risk at coverage ``c`` is the error rate among the ``max(1, ceil(c * N))`` most confident
    answers (so at ``c = 0``, that of the single most confident), ties in expectation as in
    :func:`prr`; its mean over a fine grid approaches the area PRR uses.

    Returns
    -------
    dict with ``coverage`` and ``risk``: lists of ``points`` floats.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ConfigError(f"points must be an integer >= 2; got {points!r}. Use 21 (steps of 0.05)")
    s, e = _check(scores, errors)
    risk = _expected_risk(s, e)  # (N,)
    grid = np.linspace(0.0, 1.0, points)  # (points,)
    answered = np.maximum(1, np.ceil(grid * len(s) - 1e-9)).astype(np.int64)  # 1e-9: 0.3 * 10
    return {"coverage": grid.tolist(), "risk": risk[answered - 1].tolist()}
