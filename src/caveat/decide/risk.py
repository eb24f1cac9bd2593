"""Abstention thresholds with a guaranteed bound on the error rate of the answered inputs.

``RiskControlled`` answers an input when its uncertainty score is at most a threshold chosen by
Learn-then-Test (LTT; Angelopoulos, Bates, Candès, Jordan, Lei 2021, "Learn then Test: Calibrating
predictive algorithms to achieve risk control"). Each candidate threshold ``lam`` (a distinct
calibration score) is a hypothesis ``H0: R(lam) > target`` about the selective risk
``R(lam) = P(error | score <= lam)``. Given the ``n_lam`` answered calibration inputs, their error
count ``k_lam`` is Binomial(n_lam, R(lam)), so ``binom.cdf(k_lam, n_lam, target)`` is a valid
p-value. Candidates are tested in a fixed sequence from the most conservative (fewest answers)
to the least, stopping at the first non-rejection; the last rejected threshold is kept. Fixed-
sequence testing controls the family-wise error at ``delta``, hence

    P( R(threshold) <= target ) >= 1 - delta      over the draw of the calibration set.

Thresholds that answer fewer than ``n_min = ceil(log(delta) / log(1 - target))`` calibration
inputs cannot be rejected even with zero errors, so the sequence starts after them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import binom

from caveat.decide.conformal import check_level
from caveat.errors import ConfigError, DataError, NotCalibratedError


class InfeasibleRiskError(ConfigError):
    """No abstention threshold meets the risk target at the asked confidence."""


def as_scores(scores: Any, *, name: str = "scores", n: int | None = None) -> np.ndarray:
    """Validate a ``(N,)`` array of finite uncertainty scores (higher = more uncertain)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise DataError(f"{name} must be a non-empty 1-D array of shape (N,); got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} must have shape ({n},) to match probs; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{name} must be finite; got {arr[bad]} at position {bad}")
    return arr


def _percent(x: float) -> str:
    return f"{100 * x:.3g}%"


def min_answered(target_risk: float, delta: float) -> int:
    """Fewest answered inputs for which zero errors reject ``R > target`` at level ``delta``."""
    n = math.ceil(math.log(delta) / math.log1p(-target_risk))
    while binom.cdf(0, n, target_risk) > delta:  # guard the float rounding of the ceil above
        n += 1
    return max(n, 1)


class RiskControlled:
    """Answer when the uncertainty score is at most a threshold with a risk guarantee.

    Parameters
    ----------
    target_risk : bound on the error rate of answered inputs, in (0, 1).
    delta : allowed probability that the bound fails (over calibration sets), in (0, 1).
    score : name of the uncertainty score the thresholds refer to (used in reasons and state).
    allow_empty : when no threshold meets the target, abstain on everything instead of raising.

    Attributes
    ----------
    threshold : answer when ``score <= threshold`` (``-inf``: abstain on everything).
    coverage_calibration : fraction of calibration inputs answered at ``threshold``.
    risk_calibration : error rate of those answered calibration inputs.
    """

    def __init__(self, target_risk: float = 0.02, delta: float = 0.05, *, score: str = "msp",
                 allow_empty: bool = False) -> None:
        self.target_risk = check_level("target_risk", target_risk, fix="Use e.g. target_risk=0.02 for at most 2% errors.")
        self.delta = check_level("delta", delta, fix="Use e.g. delta=0.05 for 95% confidence.")
        if not isinstance(score, str) or not score:
            raise ConfigError(f"score must be the name of an uncertainty score, e.g. 'msp'; got {score!r}")
        if not isinstance(allow_empty, bool):
            raise ConfigError(f"allow_empty must be True or False; got {allow_empty!r}")
        self.score = score
        self.allow_empty = allow_empty
        self.threshold: float | None = None
        self.coverage_calibration: float | None = None
        self.risk_calibration: float | None = None
        self.n_calibration: int | None = None

    def __repr__(self) -> str:
        fitted = "not calibrated" if self.threshold is None else f"threshold={self.threshold:.4g}"
        return f"RiskControlled(target_risk={self.target_risk}, delta={self.delta}, score={self.score!r}, {fitted})"

    @property
    def guarantee(self) -> str:
        """The promise in words, e.g. "risk ≤ 2% at 95% confidence"."""
        return f"risk ≤ {_percent(self.target_risk)} at {_percent(1 - self.delta)} confidence"

    def calibrate(self, scores: Any, errors: Any) -> RiskControlled:
        """Choose the threshold on a calibration split.

        Parameters
        ----------
        scores : (N,) uncertainty scores, higher = more uncertain.
        errors : (N,) bool, True where the model's answer was wrong.

        Returns
        -------
        self
        """
        s = as_scores(scores)
        e = np.asarray(errors)
        if e.shape != s.shape:
            raise DataError(f"errors must have shape {s.shape} to match scores; got shape {e.shape}")
        if e.dtype != bool:
            if not np.isin(e, (0, 1)).all():
                raise DataError("errors must be bool (True = the answer was wrong) or 0/1")
            e = e.astype(bool)
        n = s.shape[0]
        order = np.argsort(s, kind="stable")
        s_sorted = s[order]  # (N,) most confident first
        answered = np.arange(1, n + 1)  # (N,) inputs answered at threshold s_sorted[i]
        wrong = np.cumsum(e[order])  # (N,) errors among them
        last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # ties are answered together
        lam, n_lam, k_lam = s_sorted[last_of_tie], answered[last_of_tie], wrong[last_of_tie]

        n_min = min_answered(self.target_risk, self.delta)
        testable = n_lam >= n_min
        lam, n_lam, k_lam = lam[testable], n_lam[testable], k_lam[testable]
        rejected = binom.cdf(k_lam, n_lam, self.target_risk) <= self.delta  # (K,) H0: R > target
        stop = int(np.argmin(rejected)) if not rejected.all() else rejected.shape[0]  # first non-rejection
        self.n_calibration = n
        if stop == 0:
            if not self.allow_empty:
                raise InfeasibleRiskError(
                    f"no abstention threshold keeps the error rate of answered inputs ≤ {self.target_risk} "
                    f"with probability ≥ {1 - self.delta:.3g} (target_risk={self.target_risk}, "
                    f"delta={self.delta}) on n={n} calibration examples: answering everything errs on "
                    f"{e.mean():.3g}, and even an error-free threshold needs ≥ {n_min} answered examples. "
                    "Use a larger target_risk or delta, or more calibration data; or pass allow_empty=True "
                    "to abstain on every input."
                )
            self.threshold, self.coverage_calibration, self.risk_calibration = -math.inf, 0.0, 0.0
            return self
        self.threshold = float(lam[stop - 1])
        self.coverage_calibration = float(n_lam[stop - 1] / n)
        self.risk_calibration = float(k_lam[stop - 1] / n_lam[stop - 1])
        return self

    def decide(self, scores: Any) -> np.ndarray:
        """Which inputs to answer.

        Parameters
        ----------
        scores : (N,) uncertainty scores of the same kind as at calibration.

        Returns
        -------
        (N,) bool, True = answer (score <= threshold), False = abstain.
        """
        if self.threshold is None:
            raise NotCalibratedError(
                "this RiskControlled is not calibrated: call calibrate(scores, errors) on the "
                "calibration split first, then decide(scores)"
            )
        return as_scores(scores) <= self.threshold

    def state(self) -> dict:
        """JSON-able settings and fitted threshold (``None`` stands for -inf); see ``from_state``."""
        finite = self.threshold is not None and math.isfinite(self.threshold)
        return {
            "target_risk": self.target_risk,
            "delta": self.delta,
            "score": self.score,
            "allow_empty": self.allow_empty,
            "calibrated": self.threshold is not None,
            "threshold": self.threshold if finite else None,
            "coverage_calibration": self.coverage_calibration,
            "risk_calibration": self.risk_calibration,
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_state(cls, state: dict) -> RiskControlled:
        """Rebuild from ``state()``; calibrated if the state was."""
        missing = {"target_risk", "delta", "score", "threshold"} - set(state)
        if missing:
            raise ConfigError(f"risk state lacks {', '.join(sorted(missing))}; save it with state()")
        obj = cls(state["target_risk"], state["delta"], score=state["score"],
                  allow_empty=state.get("allow_empty", False))
        if state.get("calibrated", state["threshold"] is not None):
            obj.threshold = -math.inf if state["threshold"] is None else float(state["threshold"])
            obj.coverage_calibration = state.get("coverage_calibration")
            obj.risk_calibration = state.get("risk_calibration")
            obj.n_calibration = state.get("n_calibration")
        return obj
