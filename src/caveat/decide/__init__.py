"""Decide what to do with each prediction: conformal sets, risk-controlled abstention, and a policy.

All of it is pure array code: it takes probabilities ``(N, C)`` (or ``(M, N, C)``, averaged over M)
and uncertainty scores ``(N,)`` (higher = more uncertain), never models. Deciders are staged:
``calibrate(...)`` on the calibration split, then ``predict_set`` / ``decide``.
"""

from caveat.decide.conformal import CONFORMAL, ConformalClassifier
from caveat.decide.policy import ACTIONS, TRIGGERS, Decision, Policy
from caveat.decide.risk import InfeasibleRiskError, RiskControlled

__all__ = [
    "ACTIONS",
    "CONFORMAL",
    "TRIGGERS",
    "ConformalClassifier",
    "Decision",
    "InfeasibleRiskError",
    "Policy",
    "RiskControlled",
]
