"""The statistics under ``RiskControlled`` (risk.py): exact tests of one threshold, and the multiple-testing
procedure that keeps their family-wise error at ``delta``. See risk.py's docstring for how they are used."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import gammaln, xlog1py, xlogy
from scipy.stats import beta as beta_dist
from scipy.stats import binom


def min_answered(target_risk: float, delta: float) -> int:
    """Fewest answered inputs for which zero errors reject ``R > target`` at level ``delta``."""
    n = math.ceil(math.log(delta) / math.log1p(-target_risk))
    while binom.cdf(0, n, target_risk) > delta:  # guard the float rounding of the ceil above
        n += 1
    return max(n, 1)


def lower_rate(k: Any, n: Any, level: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound on a rate from ``k`` successes in ``n`` trials."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        b = beta_dist.ppf(level, np.maximum(k, 1), np.maximum(n - k + 1, 1))
    return np.where(k <= 0, 0.0, b)


def mixture_pvalue(
    wrong: Any, answered: Any, ood_answered: Any, m: int, weight: Any, pi: float, target: float, *, grid: int = 48
) -> np.ndarray:
    """Exact p-value of ``H0: w (r - t) + pi (1 - t) o > 0`` from two independent binomial samples.

    ``r`` is the in-scope selective risk (``wrong`` errors among ``answered``, binomial given ``answered``), ``o``
    the out-of-scope answer rate (``ood_answered`` of ``m``), ``w = (1 - pi) a`` the in-scope answered share (a
    lower bound on it makes the hypothesis larger, so the test stays valid) and ``t`` the target: this is
    ``R > t`` for the mixture's selective risk (module docstring). The statistic ``T = w (K / A - t) + pi (1 - t)
    O / m`` is small when the risk is; the p-value is the largest ``P(T <= T_obs)`` over ``H0``. That
    probability falls as ``r`` or ``o`` grows, so its largest value lies on the line ``w (r - t) + pi (1 - t) o
    = 0``; the line is cut into ``grid`` pieces and each piece bounded above by its smallest ``r`` and smallest
    ``o`` (so the p-value is never under-stated), and ``P(T <= T_obs)`` is summed exactly over ``O``.

    Parameters
    ----------
    wrong, answered, ood_answered, weight : (K,) per candidate threshold.

    Returns
    -------
    (K,) p-values in [0, 1]; 1 where nothing in-scope is answered or the observed risk is not below the target.
    """
    k = np.asarray(wrong, dtype=np.float64)
    a = np.asarray(answered, dtype=np.float64)
    oa = np.asarray(ood_answered, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    c = pi * (1 - target) / m  # weight of one out-of-scope answer in T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_obs = w * (k / a - target) + c * oa  # (K,)
    # where the observed risk is at the target or above it the p-value is near 1 or more: 1 keeps the test valid
    live = (a > 0) & (w > 0) & (t_obs < 0)
    p = np.ones(k.shape)
    if not live.any():
        return p
    k, a, oa, w, t_obs = k[live], a[live], oa[live], w[live], t_obs[live]
    o_max = np.minimum(1.0, target * w / (pi * (1 - target)))  # (L,) r = 0 on the line past this
    edges = np.linspace(0.0, 1.0, grid + 1)  # pieces of [0, o_max], per candidate
    best = np.zeros(k.shape)
    # out-of-scope counts past (T_obs + w t) / c leave no room for any in-scope count: they add nothing
    j = np.arange(min(m, int(np.floor(((t_obs + w * target) / c).max() + 1e-9))) + 1, dtype=np.float64)  # (J,)
    log_choose = gammaln(m + 1) - gammaln(j + 1) - gammaln(m - j + 1)  # (J,)
    for g in range(grid):
        o_low = edges[g] * o_max  # (L,) smallest o of the piece
        r_low = np.maximum(target - pi * (1 - target) * (edges[g + 1] * o_max) / w, 0.0)  # smallest r of the piece
        pmf = np.exp(log_choose + xlogy(j, o_low[:, None]) + xlog1py(m - j, -o_low[:, None]))  # (L, J) P(O = j)
        k_max = np.floor(a[:, None] * (target + (t_obs[:, None] - c * j[None, :]) / w[:, None]) + 1e-9)  # (L, J)
        cdf = np.where(k_max >= 0, binom.cdf(k_max, a[:, None], r_low[:, None]), 0.0)  # P(K <= k_max)
        best = np.maximum(best, (pmf * cdf).sum(axis=1))
    p[live] = np.minimum(best, 1.0)
    return p


def fallback(starts: np.ndarray, share: float, pvalues: Callable[[np.ndarray], np.ndarray], size: int) -> np.ndarray:
    """The fallback procedure over ``size`` ordered hypotheses (Wiens 2003).

    Parameters
    ----------
    starts : indices of the start points, each owning ``share`` of the level (repeats add up).
    pvalues : ``pvalues(indices)`` -> the p-values of those hypotheses; asked only for hypotheses that get a
        level (in chunks), so a chain that breaks early costs little.

    Returns
    -------
    (size,) bool: rejected. Family-wise error <= ``share * len(starts)`` under any dependence.
    """
    own = np.zeros(size)
    np.add.at(own, starts, share)
    rejected = np.zeros(size, dtype=bool)
    known: dict[int, float] = {}
    level = 0.0
    for k in range(size):
        level = own[k] + (level if k and rejected[k - 1] else 0.0)
        if level <= 0:
            continue
        if k not in known:
            chunk = np.arange(k, min(k + 32, size))
            known.update(zip(chunk.tolist(), pvalues(chunk).tolist()))
        rejected[k] = known[k] <= level
    return rejected
