"""Turn probabilities and scores into one action per input: answer, abstain or route, with the reason.

Each configured check is a *trigger* that fires on some inputs:

- ``risk``: the uncertainty score exceeds the ``RiskControlled`` threshold;
- ``ood``: the out-of-distribution score exceeds ``ood_threshold``;
- ``disagreement``: the ensemble-disagreement score exceeds ``disagreement_threshold``;
- ``set_size``: the conformal prediction set has more than ``max_set_size`` labels;
- ``empty_set``: the conformal prediction set is empty (no label is plausible).

An input is routed to a human when a trigger named in ``route_on`` fires, otherwise it is
abstained on when any other trigger fires, otherwise it is answered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from caveat.decide.conformal import ConformalClassifier, as_probs
from caveat.decide.risk import RiskControlled, as_scores
from caveat.errors import ConfigError, DataError

ACTIONS = ("answer", "abstain", "route")
TRIGGERS = ("risk", "ood", "disagreement", "set_size", "empty_set")


@dataclass
class Decision:
    """The decisions of one batch of N inputs over C classes.

    Attributes
    ----------
    labels : (N,) int, the most probable class (also given when not answered).
    prediction_set : (N, C) bool, the conformal set (the top label alone without conformal).
    action : (N,) str, each one of "answer", "abstain", "route".
    reason : N strings naming the scores and thresholds behind each action.
    """

    labels: np.ndarray
    prediction_set: np.ndarray
    action: np.ndarray
    reason: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def answered(self) -> np.ndarray:
        """(N,) bool, True where the action is "answer"."""
        return self.action == "answer"

    def counts(self) -> dict[str, int]:
        """How many inputs got each action."""
        return {a: int((self.action == a).sum()) for a in ACTIONS}


def _threshold(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number or None; got {value!r}")
    return float(value)


class Policy:
    """Map probabilities and uncertainty scores to answer / abstain / route.

    Parameters
    ----------
    conformal : a calibrated ``ConformalClassifier`` (enables ``set_size`` and ``empty_set``).
    risk : a calibrated ``RiskControlled`` on the ``uncertainty`` scores (enables ``risk``).
    ood_threshold : abstain/route when the OOD score is above it (enables ``ood``).
    disagreement_threshold : abstain/route when ensemble disagreement is above it.
    max_set_size : route/abstain when the prediction set has more labels than this.
    route_on : triggers that send the input to a human; the others abstain.
    ood_name, disagreement_name : names of those scores in reasons, e.g. "mahalanobis".

    Examples
    --------
    >>> policy = Policy(conformal=cp, risk=rc, max_set_size=2, route_on=("set_size",))  # doctest: +SKIP
    >>> decision = policy.decide(probs, uncertainty=least_confidence_scores)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        conformal: ConformalClassifier | None = None,
        risk: RiskControlled | None = None,
        ood_threshold: float | None = None,
        disagreement_threshold: float | None = None,
        max_set_size: int | None = None,
        route_on: Iterable[str] = ("set_size",),
        ood_name: str = "ood",
        disagreement_name: str = "disagreement",
    ) -> None:
        if conformal is not None and not isinstance(conformal, ConformalClassifier):
            raise ConfigError(f"conformal must be a ConformalClassifier or None; got {type(conformal).__name__}")
        if risk is not None and not isinstance(risk, RiskControlled):
            raise ConfigError(f"risk must be a RiskControlled or None; got {type(risk).__name__}")
        if max_set_size is not None:
            if isinstance(max_set_size, bool) or not isinstance(max_set_size, Integral) or max_set_size < 1:
                raise ConfigError(f"max_set_size must be an integer >= 1 or None; got {max_set_size!r}")
            if conformal is None:
                raise ConfigError("max_set_size needs prediction sets: pass conformal=ConformalClassifier(...)")
        route_on = (route_on,) if isinstance(route_on, str) else tuple(route_on)
        unknown = [t for t in route_on if t not in TRIGGERS]
        if unknown:
            raise ConfigError(
                f"unknown trigger(s) in route_on: {', '.join(map(repr, unknown))}; choose from {', '.join(TRIGGERS)}"
            )
        self.conformal = conformal
        self.risk = risk
        self.ood_threshold = _threshold("ood_threshold", ood_threshold)
        self.disagreement_threshold = _threshold("disagreement_threshold", disagreement_threshold)
        self.max_set_size = None if max_set_size is None else int(max_set_size)
        self.route_on = route_on
        self.ood_name = ood_name
        self.disagreement_name = disagreement_name

    def _score(self, name: str, values: Any, needed: bool, n: int, hint: str) -> np.ndarray | None:
        if values is None:
            if needed:
                raise DataError(
                    f"this Policy checks {name} scores but none were passed: call decide(probs, {name}=...)"
                )
            return None
        if not needed:
            raise ConfigError(f"got {name} scores but the Policy has no check for them: {hint}")
        return as_scores(values, name=name, n=n)

    def decide(
        self,
        probs: Any,
        *,
        uncertainty: Any = None,
        ood: Any = None,
        disagreement: Any = None,
        weights: Any = None,
    ) -> Decision:
        """Decide a batch.

        Parameters
        ----------
        probs : (N, C) or (M, N, C) probabilities.
        uncertainty : (N,) scores the ``risk`` threshold refers to (needed iff ``risk`` is set).
        ood : (N,) OOD scores (needed iff ``ood_threshold`` is set).
        disagreement : (N,) ensemble-disagreement scores (needed iff ``disagreement_threshold`` is set).
        weights : (N,) importance weights, for prediction sets calibrated under covariate shift.

        Returns
        -------
        Decision
        """
        p = as_probs(probs)  # (N, C)
        n = p.shape[0]
        labels = p.argmax(axis=1)  # (N,)
        if self.conformal is not None:
            sets = self.conformal.predict_set(p, weights=weights)  # (N, C)
        else:
            sets = np.zeros(p.shape, dtype=bool)
            sets[np.arange(n), labels] = True
        u = self._score("uncertainty", uncertainty, self.risk is not None, n, "pass Policy(risk=RiskControlled(...))")
        o = self._score("ood", ood, self.ood_threshold is not None, n, "pass Policy(ood_threshold=...)")
        d = self._score(
            "disagreement",
            disagreement,
            self.disagreement_threshold is not None,
            n,
            "pass Policy(disagreement_threshold=...)",
        )

        # trigger -> (fired (N,) bool, reason of input i when fired, reason when it passed)
        checks: dict[str, tuple[np.ndarray, Callable[[int], str], Callable[[int], str]]] = {}
        if self.risk is not None:
            r, t = self.risk, self.risk.threshold
            fired = ~r.decide(u)
            if t is not None and math.isinf(t):
                checks["risk"] = (
                    fired,
                    lambda i: f"no {r.score} threshold meets {r.guarantee}: abstaining on all",
                    lambda i: "",
                )
            else:
                checks["risk"] = (
                    fired,
                    lambda i: f"{r.score} {u[i]:.3g} > threshold {t:.3g} ({r.guarantee})",
                    lambda i: f"{r.score} {u[i]:.3g} ≤ threshold {t:.3g}",
                )
        for name, values, thr, label in (
            ("ood", o, self.ood_threshold, self.ood_name),
            ("disagreement", d, self.disagreement_threshold, self.disagreement_name),
        ):
            if thr is not None:
                checks[name] = (
                    values > thr,
                    lambda i, v=values, t=thr, s=label: f"{s} {v[i]:.3g} > threshold {t:.3g}",
                    lambda i, v=values, t=thr, s=label: f"{s} {v[i]:.3g} ≤ threshold {t:.3g}",
                )
        if self.conformal is not None:
            size = sets.sum(axis=1)  # (N,)
            level = f"{1 - self.conformal.alpha:.0%}"
            checks["empty_set"] = (
                size == 0,
                lambda i: f"empty {level} prediction set (no label is plausible)",
                lambda i: "",
            )
            if self.max_set_size is not None:
                k = self.max_set_size
                checks["set_size"] = (
                    size > k,
                    lambda i: f"{level} prediction set has {size[i]} labels > {k}",
                    lambda i: f"{level} prediction set has {size[i]} ≤ {k} labels",
                )

        action = np.full(n, "answer", dtype=object)
        reason: list[str] = []
        for i in range(n):
            routed = [why(i) for t, (f, why, _) in checks.items() if f[i] and t in self.route_on]
            abstained = [why(i) for t, (f, why, _) in checks.items() if f[i] and t not in self.route_on]
            if routed:
                action[i] = "route"
            elif abstained:
                action[i] = "abstain"
            passed = [ok(i) for f, _, ok in checks.values() if not f[i]]
            reason.append("; ".join(routed + abstained) or "; ".join(x for x in passed if x) or "no checks configured")
        return Decision(labels=labels, prediction_set=sets, action=action.astype(str), reason=reason)
