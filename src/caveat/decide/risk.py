"""Abstention thresholds with a guaranteed bound on the error rate of the answered inputs.

``RiskControlled`` answers an input when its uncertainty score is at most a threshold chosen by
Learn-then-Test (LTT; Angelopoulos, Bates, Candès, Jordan, Lei 2021, "Learn then Test: Calibrating
predictive algorithms to achieve risk control"). Each candidate threshold ``lam`` (a distinct
calibration score) is a hypothesis ``H0: R(lam) > target`` about the selective risk
``R(lam) = P(error | score <= lam)``. Given the ``n_lam`` answered calibration inputs, their error
count ``k_lam`` is Binomial(n_lam, R(lam)), so ``binom.cdf(k_lam, n_lam, target)`` is a valid
p-value (the exact one-sided binomial test, the tightest there is for one threshold).

Which thresholds to test, and at what level. Candidates are ordered from the most conservative
(fewest answers) to the least and tested by the fallback procedure (Wiens 2003, "A fixed sequence
Bonferroni procedure for testing multiple endpoints"; a graphical procedure in the sense of Bretz,
Maurer, Brannath, Posch 2009), which controls the family-wise error at ``delta`` under any dependence:
``starts = J`` start points each own a share ``delta / J``; the level of a candidate is its own share
(zero unless it is a start) plus the level of the candidate before it *if that one was rejected*. So a
run of rejections carries its level forward and adds each start's share as it passes it, and a
non-rejection ends the run until the next start. Start j is the first candidate whose error-free bound
at ``delta / J`` is ``<= target / 2**j``: j = 0 is the first candidate that could pass at all (fewer
answered inputs cannot be rejected even with zero errors); later starts go on past an error among the
most confident inputs (label noise), which ends plain fixed-sequence testing before any useful
threshold. ``starts = 1`` is plain fixed-sequence testing. The threshold kept is the least
conservative rejected candidate; since every rejection is covered by the family-wise control,

    P( R(threshold) <= target ) >= 1 - delta      over the draw of the calibration set.

Out-of-scope inputs. When deployment traffic holds a share ``pi`` of out-of-scope inputs (any
answer to them is an error), pass out-of-scope calibration scores too. The selective risk of the
mixture is

    R(lam) = ((1 - pi) a r + pi o) / ((1 - pi) a + pi o)

with ``a = P(answer | in)``, ``r = P(wrong | answered, in)`` (the in-scope selective risk) and
``o = P(answer | out)``. ``R`` grows with ``r`` and ``o`` and falls with ``a``, so bounds ``U_r``, ``U_o``
above and ``L_a`` below, holding together with probability ``>= 1 - level``, give an upper bound
``B = R(L_a, U_r, U_o)``; ``B <= target`` is a level test of ``H0: R(lam) > target`` and enters the same
fallback procedure. ``U_r`` is the exact binomial bound on the errors among the answered in-scope inputs
(conditional on how many were answered), so with no out-of-scope traffic the test is exactly the
in-scope one; ``a`` enters only through the small out-of-scope term, so it gets a small share of the
level. The level is split ``r : o : a = 0.5 : 0.4 : 0.1`` (fixed in advance; a union bound). This
replaces the earlier Bonferroni over three Clopper-Pearson bounds on the unconditional rates ``m = a r``,
``a`` and ``o``, whose ratio ``U_m / L_a`` compounded two loose bounds. The in-scope and out-of-scope
calibration sets may have any sizes: ``pi`` is the deployment share, not theirs.

When no threshold is certified, ``advice`` names the smallest target the same procedure certifies on
this data and the coverage there. A target picked after looking at that advice is chosen on the data:
re-calibrate on fresh data for the clean guarantee, or read it as what this calibration set supports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import binom

from caveat.decide.conformal import check_level
from caveat.decide.ltt import fallback, lower_rate, min_answered, mixture_pvalue
from caveat.errors import ConfigError, DataError, NotCalibratedError

# share of the smallest test level spent on the lower bound of the in-scope answer rate (mixture test)
ANSWER_RATE_SHARE = 0.05
MAX_MIXTURE_CANDIDATES = 400  # thresholds tested with out-of-scope data: the exact joint test costs O(m) each


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


class RiskControlled:
    """Answer when the uncertainty score is at most a threshold with a risk guarantee.

    Parameters
    ----------
    target_risk : bound on the error rate of answered inputs, in (0, 1).
    delta : allowed probability that the bound fails (over calibration sets), in (0, 1).
    score : name of the uncertainty score the thresholds refer to (used in reasons and state), kept as
        given: a text classifier's score (``caveat.uncertainty.scores``), a generation estimator (where
        ``msp`` is the sequence probability) or a span confidence. The text-classification stack maps the
        classifier's old ``"msp"`` to ``"least_confidence"`` before it gets here (``resolve_score_name``).
    allow_empty : when no threshold meets the target, abstain on everything (and say so in ``advice``)
        instead of raising.
    starts : start points of the fallback procedure, each owning ``delta / starts`` (module docstring):
        one error among the most confident inputs ends plain fixed-sequence testing (``starts=1``) before
        any useful threshold (it happens with label noise, as in CoNLL-2003); later starts go on past it.

    Attributes
    ----------
    threshold : answer when ``score <= threshold`` (``-inf``: abstain on everything).
    coverage_calibration : fraction of calibration inputs answered at ``threshold``.
    risk_calibration : error rate of those answered calibration inputs.
    advice : when nothing is certified, ``{"target_risk", "coverage", "reason"}``: the smallest target this
        calibration data certifies (at the same delta) and the coverage there, or ``None`` for that target
        when none up to 50% is; else ``None``.
    """

    def __init__(
        self,
        target_risk: float = 0.02,
        delta: float = 0.05,
        *,
        score: str = "least_confidence",
        allow_empty: bool = False,
        starts: int = 1,
    ) -> None:
        self.target_risk = check_level(
            "target_risk", target_risk, fix="Use e.g. target_risk=0.02 for at most 2% errors."
        )
        self.delta = check_level("delta", delta, fix="Use e.g. delta=0.05 for 95% confidence.")
        if not isinstance(score, str) or not score:
            raise ConfigError(f"score must be the name of an uncertainty score, e.g. 'least_confidence'; got {score!r}")
        if not isinstance(allow_empty, bool):
            raise ConfigError(f"allow_empty must be True or False; got {allow_empty!r}")
        if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
            raise ConfigError(
                f"starts must be an integer >= 1 (start points, each owning delta / starts); got {starts!r}"
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
        self._advice: dict | None = None  # see ``advice``
        self._data: dict | None = None  # the last calibration's candidates, for ``advice``

    def __repr__(self) -> str:
        fitted = "not calibrated" if self.threshold is None else f"threshold={self.threshold:.4g}"
        return f"RiskControlled(target_risk={self.target_risk}, delta={self.delta}, score={self.score!r}, {fitted})"

    @property
    def guarantee(self) -> str:
        """The promise in words, e.g. "risk ≤ 2% at 95% confidence"."""
        return f"risk ≤ {_percent(self.target_risk)} at {_percent(1 - self.delta)} confidence"

    @property
    def advice(self) -> dict | None:
        """When nothing is certified: ``{"target_risk", "coverage", "reason"}``, the smallest target (0.1%-point
        grid, up to 50%) this calibration data certifies at the same delta and the coverage there (``None`` for
        both when none is). Worked out on first use."""
        if self._advice is None and self._data is not None and self.threshold == -math.inf:
            self._advice = self._advise(self._data)
        return self._advice

    @property
    def summary(self) -> str:
        """What the calibrated threshold does, in words; when nothing can be certified, what can be instead."""
        if self.threshold is None:
            return f"not calibrated: call calibrate(scores, errors) to choose a threshold with {self.guarantee}"
        if math.isfinite(self.threshold):
            return (
                f"answers {_percent(self.coverage_calibration or 0.0)} of calibration traffic with {self.guarantee} "
                f"(error rate there on calibration: {_percent(self.risk_calibration or 0.0)})"
            )
        words = (
            f"no threshold meets {self.guarantee} on these {self.n_calibration} calibration examples, so every "
            "input is abstained on."
        )
        advice = self.advice or {}
        if advice.get("target_risk") is not None:
            words += (
                f" The smallest target this data certifies is {_percent(advice['target_risk'])} (answering "
                f"{_percent(advice['coverage'])} of calibration traffic): re-calibrate with "
                f"--target-risk {advice['target_risk']:g}, or add calibration data for {_percent(self.target_risk)}."
            )
        elif advice:
            words += " " + advice["reason"] + " Add calibration data."
        return words

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
        data = self._prepare(scores, errors, ood_scores, ood_rate)
        rejected = self._certify(data, self.target_risk)
        stop = int(np.flatnonzero(rejected)[-1]) + 1 if rejected.any() else 0
        self.n_calibration = data["n"]
        self.ood_rate = data["pi"]
        self.n_ood_calibration = data["m"] if data["pi"] is not None else None
        self.ood_coverage_calibration = None
        self._advice, self._data = None, data
        if stop == 0:
            why = self._why(data)
            if not self.allow_empty:
                advice = self._advise(data)
                raise InfeasibleRiskError(
                    f"no abstention threshold keeps the error rate of answered inputs ≤ {self.target_risk} "
                    f"with probability ≥ {1 - self.delta:.3g} (target_risk={self.target_risk}, "
                    f"delta={self.delta}) on n={data['n']} calibration examples: answering everything errs on "
                    f"{data['e'].mean():.3g}, and {why}. {advice['reason']} "
                    "Use a larger target_risk or delta, or more calibration data; or pass allow_empty=True "
                    "to abstain on every input."
                )
            self.threshold, self.coverage_calibration, self.risk_calibration = -math.inf, 0.0, 0.0
            return self
        self.threshold = float(data["lam"][stop - 1])
        self.coverage_calibration = float(data["coverage"][stop - 1])
        self.risk_calibration = float(data["risk"][stop - 1])
        if data["pi"] is not None:
            self.ood_coverage_calibration = float(data["oa"][stop - 1] / data["m"])
        return self

    def _prepare(self, scores: Any, errors: Any, ood_scores: Any, ood_rate: float | None) -> dict:
        """Candidates (K,) in the fixed order with their counts: what any target is tested on."""
        s, e = self._check(scores, errors)
        n = s.shape[0]
        if ood_scores is None and ood_rate is None:
            order = np.argsort(s, kind="stable")
            s_sorted = s[order]  # (N,) most confident first
            answered = np.arange(1, n + 1)
            wrong = np.cumsum(e[order])
            last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True] & np.isfinite(s_sorted)  # ties answered together
            a, k = answered[last_of_tie], wrong[last_of_tie]
            risk = np.divide(k, a, out=np.zeros(len(a)), where=a > 0)
            return {
                "lam": s_sorted[last_of_tie],
                "a": a,
                "k": k,
                "n": n,
                "e": e,
                "coverage": a / n,
                "risk": risk,
                "pi": None,
                "m": 0,
                "oa": None,
            }
        if ood_scores is None or ood_rate is None:
            raise ConfigError(
                "out-of-scope risk control needs both ood_scores (calibration scores of out-of-scope "
                f"inputs) and ood_rate (their expected share at deployment); got ood_rate={ood_rate!r}"
            )
        pi = check_level("ood_rate", ood_rate, fix="Use the expected share of out-of-scope inputs, e.g. ood_rate=0.1.")
        o = np.asarray(ood_scores, dtype=np.float64)
        if o.ndim != 1 or o.shape[0] == 0 or np.isnan(o).any() or np.isneginf(o).any():
            raise DataError(f"ood_scores must be a non-empty 1-D array of scores (+inf allowed); got shape {o.shape}")
        m = o.shape[0]
        lam = np.unique(np.r_[s, o])  # (K,) ascending: the fixed order, most conservative first
        lam = lam[np.isfinite(lam)]
        if len(lam) > MAX_MIXTURE_CANDIDATES:  # evenly spaced in rank: the order is still fixed in advance
            lam = lam[np.unique(np.linspace(0, len(lam) - 1, MAX_MIXTURE_CANDIDATES).round().astype(int))]
        a = np.searchsorted(np.sort(s), lam, side="right")  # (K,) in-scope answered
        cum = np.cumsum(e[np.argsort(s, kind="stable")])  # errors among the i+1 most confident in-scope
        k = np.where(a > 0, cum[np.maximum(a - 1, 0)], 0)  # (K,)
        oa = np.searchsorted(np.sort(o), lam, side="right")  # (K,) out-of-scope answered
        coverage = (1 - pi) * a / n + pi * oa / m
        risk = np.divide((1 - pi) * k / n + pi * oa / m, coverage, out=np.zeros(len(lam)), where=coverage > 0)
        return {
            "lam": lam,
            "a": a,
            "k": k,
            "n": n,
            "e": e,
            "coverage": coverage,
            "risk": risk,
            "pi": pi,
            "m": m,
            "oa": oa,
        }

    def _pvalues(self, data: dict, target: float, *, best: bool = False, at: Any = slice(None)) -> np.ndarray:
        """p-value of ``H0: R(lam) > target`` for the candidates ``at`` (default: all); ``best``: as if no answer
        were wrong (it depends only on how many inputs each candidate answers, so it may place the start points)."""
        a = data["a"][at]
        k = np.zeros_like(a) if best else data["k"][at]
        if data["pi"] is None:
            return np.where(a > 0, binom.cdf(k, a, target), 1.0)
        oa = np.zeros_like(a) if best else data["oa"][at]
        spent = ANSWER_RATE_SHARE * self.delta / self.starts  # on a lower bound of the in-scope answer rate
        weight = (1 - data["pi"]) * lower_rate(a, data["n"], spent)
        return np.minimum(mixture_pvalue(k, a, oa, data["m"], weight, data["pi"], target) + spent, 1.0)

    def _certify(self, data: dict, target: float) -> np.ndarray:
        """(K,) which candidates the fallback procedure rejects ``R > target`` for."""
        share = self.delta / self.starts
        starts = []
        for j in range(self.starts):
            below = np.flatnonzero(self._pvalues(data, target / 2**j, best=True) <= share)
            if below.size:
                starts.append(below[0])
        if not starts:
            return np.zeros(len(data["lam"]), dtype=bool)
        return fallback(np.array(starts), share, lambda at: self._pvalues(data, target, at=at), len(data["lam"]))

    def _why(self, data: dict) -> str:
        if data["pi"] is None:
            need = min_answered(self.target_risk, self.delta / self.starts)
            return f"even an error-free threshold needs ≥ {need} answered examples"
        return (
            "even an error-free threshold that answers no out-of-scope input is not provably safe with "
            f"{data['m']} out-of-scope examples"
            if not (self._pvalues(data, self.target_risk, best=True) <= self.delta / self.starts).any()
            else "the errors among the most confident inputs are too many for the target"
        )

    def _advise(self, data: dict) -> dict:
        """The smallest target on a 0.1%-point grid (up to 50%) this data certifies, and the coverage there."""
        grid = np.round(np.arange(1, 501) / 1000, 3)
        ok = lambda i: bool(self._certify(data, float(grid[i])).any())  # noqa: E731
        if not ok(len(grid) - 1):
            return {
                "target_risk": None,
                "coverage": None,
                "reason": f"No target up to 50% can be certified on this data at delta={self.delta}.",
            }
        lo, hi = -1, len(grid) - 1  # ok(hi); bisection (certifiability grows with the target, nearly always)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        target = float(grid[hi])
        rejected = self._certify(data, target)
        coverage = float(data["coverage"][np.flatnonzero(rejected)[-1]])
        return {
            "target_risk": target,
            "coverage": coverage,
            "reason": (
                f"The smallest target this calibration data certifies at delta={self.delta} is "
                f"target_risk={target:g} ({_percent(target)} errors on answered inputs), answering "
                f"{_percent(coverage)} of calibration traffic."
            ),
        }

    def frontier(
        self,
        scores: Any,
        errors: Any,
        targets: Any = (0.01, 0.02, 0.05, 0.1),
        *,
        ood_scores: Any = None,
        ood_rate: float | None = None,
    ) -> list[dict]:
        """Certified coverage at each of ``targets`` (same delta and starts) on this calibration data:
        ``[{"target_risk", "coverage", "threshold"}]``, coverage 0 where nothing is certified."""
        data = self._prepare(scores, errors, ood_scores, ood_rate)
        rows = []
        for t in targets:
            t = check_level("target", t, fix="Use targets in (0, 1), e.g. 0.02.")
            rejected = self._certify(data, t)
            i = int(np.flatnonzero(rejected)[-1]) if rejected.any() else None
            rows.append(
                {
                    "target_risk": t,
                    "coverage": float(data["coverage"][i]) if i is not None else 0.0,
                    "threshold": float(data["lam"][i]) if i is not None else None,
                }
            )
        return rows

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
            "advice": self.advice,
            "summary": self.summary,
        }

    @classmethod
    def from_state(cls, state: dict) -> RiskControlled:
        """Rebuild from ``state()``; calibrated if the state was. The score's name is kept as stored (the
        text calibration maps an old ``"msp"``, ``Calibration.from_run``)."""
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
            obj._advice = state.get("advice")
        return obj
