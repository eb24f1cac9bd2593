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
inputs cannot be rejected even with zero errors, so the sequence starts after them (the start
depends only on how many inputs are answered, not on their errors). With ``starts = J`` there are J
such sequences, the j-th starting where an error-free threshold would reach ``target / 2**j``, each
at level ``delta / J``:
the family-wise error stays below ``delta`` by the union bound, and the threshold kept is the least
conservative one any sequence certified.

Out-of-scope inputs. When deployment traffic holds a share ``pi`` of out-of-scope inputs (any
answer to them is an error), pass out-of-scope calibration scores too. The selective risk of the
mixture is

    R(lam) = ((1 - pi) m(lam) + pi o(lam)) / ((1 - pi) a(lam) + pi o(lam))

with ``a = P(answer | in)``, ``m = P(answer and wrong | in)``, ``o = P(answer | out)``. ``R`` grows
with ``m`` and ``o`` and falls with ``a``, so one-sided Clopper-Pearson bounds at ``delta / 3`` each
(upper for ``m`` and ``o``, lower for ``a``; Bonferroni) give an upper bound ``B(lam)`` that holds with
probability ``>= 1 - delta``; ``B(lam) <= target`` is then a level-``delta`` test of
``H0: R(lam) > target`` and enters the same fixed sequences (at ``delta / starts`` each; the best case
is no in-scope errors and no out-of-scope answers). The in-scope and out-of-scope
calibration sets may have any sizes: ``pi`` is the deployment share, not theirs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import beta as beta_dist
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
    starts : number of fixed sequences, each tested at ``delta / starts`` (Bonferroni); sequence j
        starts at the first threshold whose error-free bound is ``<= target / 2**j``. One error among
        the most confident inputs ends a single sequence before any useful threshold (it happens
        with label noise, as in CoNLL-2003); later starts go on past it.

    Attributes
    ----------
    threshold : answer when ``score <= threshold`` (``-inf``: abstain on everything).
    coverage_calibration : fraction of calibration inputs answered at ``threshold``.
    risk_calibration : error rate of those answered calibration inputs.
    """

    def __init__(
        self,
        target_risk: float = 0.02,
        delta: float = 0.05,
        *,
        score: str = "msp",
        allow_empty: bool = False,
        starts: int = 1,
    ) -> None:
        self.target_risk = check_level(
            "target_risk", target_risk, fix="Use e.g. target_risk=0.02 for at most 2% errors."
        )
        self.delta = check_level("delta", delta, fix="Use e.g. delta=0.05 for 95% confidence.")
        if not isinstance(score, str) or not score:
            raise ConfigError(f"score must be the name of an uncertainty score, e.g. 'msp'; got {score!r}")
        if not isinstance(allow_empty, bool):
            raise ConfigError(f"allow_empty must be True or False; got {allow_empty!r}")
        if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
            raise ConfigError(
                f"starts must be an integer >= 1 (fixed sequences, each at delta / starts); got {starts!r}"
            )
        self.score = score
        self.allow_empty = allow_empty
        self.starts = starts
        self.threshold: float | None = None
        self.coverage_calibration: float | None = None
        self.risk_calibration: float | None = None
        self.n_calibration: int | None = None
        self.ood_rate: float | None = None  # deployment share of out-of-scope inputs (mixture calibration)
        self.n_ood_calibration: int | None = None
        self.ood_coverage_calibration: float | None = None

    def __repr__(self) -> str:
        fitted = "not calibrated" if self.threshold is None else f"threshold={self.threshold:.4g}"
        return f"RiskControlled(target_risk={self.target_risk}, delta={self.delta}, score={self.score!r}, {fitted})"

    @property
    def guarantee(self) -> str:
        """The promise in words, e.g. "risk ≤ 2% at 95% confidence"."""
        return f"risk ≤ {_percent(self.target_risk)} at {_percent(1 - self.delta)} confidence"

    def calibrate(
        self, scores: Any, errors: Any, *, ood_scores: Any = None, ood_rate: float | None = None
    ) -> RiskControlled:
        """Choose the threshold on a calibration split.

        Parameters
        ----------
        scores : (N,) uncertainty scores of in-scope inputs, higher = more uncertain; ``inf`` for
            inputs another check never lets through.
        errors : (N,) bool, True where the model's answer was wrong.
        ood_scores : (M,) scores of out-of-scope calibration inputs (every answer is an error), or None.
        ood_rate : expected share of out-of-scope inputs at deployment, in (0, 1); needed with
            ``ood_scores``.

        Returns
        -------
        self
        """
        if ood_scores is not None or ood_rate is not None:
            return self._calibrate_mixture(scores, errors, ood_scores, ood_rate)
        s, e = self._check(scores, errors)
        n = s.shape[0]
        order = np.argsort(s, kind="stable")
        s_sorted = s[order]  # (N,) most confident first
        answered = np.arange(1, n + 1)  # (N,) inputs answered at threshold s_sorted[i]
        wrong = np.cumsum(e[order])  # (N,) errors among them
        last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True] & np.isfinite(s_sorted)  # ties are answered together
        lam, n_lam, k_lam = s_sorted[last_of_tie], answered[last_of_tie], wrong[last_of_tie]

        level = self.delta / self.starts  # Bonferroni over the sequences
        n_min = min_answered(self.target_risk, level)
        testable = n_lam >= n_min
        lam, n_lam, k_lam = lam[testable], n_lam[testable], k_lam[testable]
        rejected = binom.cdf(k_lam, n_lam, self.target_risk) <= level  # (K,) H0: R > target
        risk = np.divide(k_lam, n_lam, out=np.zeros(len(lam)), where=n_lam > 0)
        keep = self._sequences(rejected, 1.0 - level ** (1.0 / n_lam))  # best case: no errors
        return self._choose(
            lam,
            keep,
            n_lam / n,
            risk,
            n,
            float(e.mean()),
            f"even an error-free threshold needs ≥ {n_min} answered examples",
        )

    def _sequences(self, rejected: np.ndarray, best: np.ndarray) -> np.ndarray:
        """Thresholds certified by some fixed sequence. ``best`` (K,) is each threshold's bound in the
        best case (no errors), which depends only on how many inputs it answers. Sequence j starts at
        the first threshold whose best case is <= target / 2**j (j = 0: the first that could pass at
        all; later ones start where one early error no longer decides) and walks on to less
        conservative thresholds until its first non-rejection."""
        keep = np.zeros(len(rejected), dtype=bool)
        for j in range(self.starts):
            below = np.flatnonzero(best <= self.target_risk / 2**j)
            if below.size == 0:
                continue
            run = rejected[below[0] :]
            stop = int(np.argmin(run)) if not run.all() else run.shape[0]
            keep[below[0] : below[0] + stop] = True
        return keep

    def _check(self, scores: Any, errors: Any) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim == 1 and s.shape[0] and np.isnan(s).any():
            raise DataError(
                "scores must be finite (or +inf: never answered); got nan at position "
                f"{int(np.flatnonzero(np.isnan(s))[0])}"
            )
        as_scores(np.where(np.isposinf(s), 0.0, s) if s.ndim == 1 else s)  # +inf: never answered
        e = np.asarray(errors)
        if e.shape != s.shape:
            raise DataError(f"errors must have shape {s.shape} to match scores; got shape {e.shape}")
        if e.dtype != bool:
            if not np.isin(e, (0, 1)).all():
                raise DataError("errors must be bool (True = the answer was wrong) or 0/1")
            e = e.astype(bool)
        return s, e

    def _calibrate_mixture(self, scores: Any, errors: Any, ood_scores: Any, ood_rate: float | None) -> RiskControlled:
        if ood_scores is None or ood_rate is None:
            raise ConfigError(
                "out-of-scope risk control needs both ood_scores (calibration scores of out-of-scope "
                f"inputs) and ood_rate (their expected share at deployment); got ood_rate={ood_rate!r}"
            )
        pi = check_level("ood_rate", ood_rate, fix="Use the expected share of out-of-scope inputs, e.g. ood_rate=0.1.")
        s, e = self._check(scores, errors)
        o = np.asarray(ood_scores, dtype=np.float64)
        if o.ndim != 1 or o.shape[0] == 0 or np.isnan(o).any() or np.isneginf(o).any():
            raise DataError(f"ood_scores must be a non-empty 1-D array of scores (+inf allowed); got shape {o.shape}")
        n, m = s.shape[0], o.shape[0]
        lam = np.unique(np.r_[s, o])  # (K,) ascending: the fixed sequence, most conservative first
        lam = lam[np.isfinite(lam)]
        s_sorted, o_sorted = np.sort(s), np.sort(o)
        a = np.searchsorted(s_sorted, lam, side="right")  # (K,) in-scope answered
        k = np.cumsum(e[np.argsort(s, kind="stable")])  # errors among the i+1 most confident in-scope
        wrong = np.where(a > 0, k[np.maximum(a - 1, 0)], 0)  # (K,)
        oa = np.searchsorted(o_sorted, lam, side="right")  # (K,) out-of-scope answered
        d3 = self.delta / (3 * self.starts)  # three bounds per test (Bonferroni), starts sequences

        def upper(x, size):  # one-sided Clopper-Pearson upper bound on a rate
            return np.where(x >= size, 1.0, beta_dist.ppf(1 - d3, x + 1, np.maximum(size - x, 1)))

        def lower(x, size):
            return np.where(x <= 0, 0.0, beta_dist.ppf(d3, np.maximum(x, 1), size - x + 1))

        u_m, l_a, u_o = upper(wrong, n), lower(a, n), upper(oa, m)
        denom = (1 - pi) * l_a + pi * u_o
        bound = np.divide((1 - pi) * u_m + pi * u_o, denom, out=np.ones(len(lam)), where=denom > 0)
        rejected = bound <= self.target_risk
        # best case of each threshold: no in-scope errors, no out-of-scope answers
        u_none = upper(np.zeros_like(oa), m)
        best_denom = (1 - pi) * l_a + pi * u_none
        best = np.divide(
            (1 - pi) * upper(np.zeros_like(a), n) + pi * u_none, best_denom, out=np.ones(len(lam)), where=best_denom > 0
        )
        testable = best <= self.target_risk  # could pass at all: no in-scope errors, no OOS answered
        lam, rejected, a, wrong, oa = lam[testable], rejected[testable], a[testable], wrong[testable], oa[testable]
        coverage = (1 - pi) * a / n + pi * oa / m
        risk = np.divide((1 - pi) * wrong / n + pi * oa / m, coverage, out=np.zeros(len(lam)), where=coverage > 0)
        keep = self._sequences(rejected, best[testable])
        self.ood_rate, self.n_ood_calibration = pi, m
        self.ood_coverage_calibration = None
        chosen = self._choose(
            lam,
            keep,
            coverage,
            risk,
            n,
            float(e.mean()),
            f"even an error-free threshold that answers no out-of-scope input is not provably safe with {m} "
            "out-of-scope examples",
        )
        if np.isfinite(chosen.threshold):
            self.ood_coverage_calibration = float((o <= chosen.threshold).mean())
        return chosen

    def _choose(
        self,
        lam: np.ndarray,
        certified: np.ndarray,
        coverage: np.ndarray,
        risk: np.ndarray,
        n: int,
        error_rate: float,
        why: str,
    ) -> RiskControlled:
        """Keep the least conservative certified threshold (``certified`` from ``_sequences``)."""
        stop = int(np.flatnonzero(certified)[-1]) + 1 if certified.any() else 0
        self.n_calibration = n
        if stop == 0:
            if not self.allow_empty:
                raise InfeasibleRiskError(
                    f"no abstention threshold keeps the error rate of answered inputs ≤ {self.target_risk} "
                    f"with probability ≥ {1 - self.delta:.3g} (target_risk={self.target_risk}, "
                    f"delta={self.delta}) on n={n} calibration examples: answering everything errs on "
                    f"{error_rate:.3g}, and {why}. "
                    "Use a larger target_risk or delta, or more calibration data; or pass allow_empty=True "
                    "to abstain on every input."
                )
            self.threshold, self.coverage_calibration, self.risk_calibration = -math.inf, 0.0, 0.0
            return self
        self.threshold = float(lam[stop - 1])
        self.coverage_calibration = float(coverage[stop - 1])
        self.risk_calibration = float(risk[stop - 1])
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
            "starts": self.starts,
            "calibrated": self.threshold is not None,
            "threshold": self.threshold if finite else None,
            "coverage_calibration": self.coverage_calibration,
            "risk_calibration": self.risk_calibration,
            "n_calibration": self.n_calibration,
            "ood_rate": self.ood_rate,
            "n_ood_calibration": self.n_ood_calibration,
            "ood_coverage_calibration": self.ood_coverage_calibration,
        }

    @classmethod
    def from_state(cls, state: dict) -> RiskControlled:
        """Rebuild from ``state()``; calibrated if the state was."""
        missing = {"target_risk", "delta", "score", "threshold"} - set(state)
        if missing:
            raise ConfigError(f"risk state lacks {', '.join(sorted(missing))}; save it with state()")
        obj = cls(
            state["target_risk"],
            state["delta"],
            score=state["score"],
            allow_empty=state.get("allow_empty", False),
            starts=state.get("starts", 1),
        )
        if state.get("calibrated", state["threshold"] is not None):
            obj.threshold = -math.inf if state["threshold"] is None else float(state["threshold"])
            obj.coverage_calibration = state.get("coverage_calibration")
            obj.risk_calibration = state.get("risk_calibration")
            obj.n_calibration = state.get("n_calibration")
            obj.ood_rate = state.get("ood_rate")
            obj.n_ood_calibration = state.get("n_ood_calibration")
            obj.ood_coverage_calibration = state.get("ood_coverage_calibration")
        return obj
