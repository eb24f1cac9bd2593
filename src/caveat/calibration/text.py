"""The fitted calibration of a text-classification run, applied to ``Predictions``.

``Calibration`` is loaded once with the run (``Calibration.from_run``) and is the one place where the
fitted temperature is applied: the inference engine calls ``apply``; explainers that need the scaled
logits inside autograd call ``scale``. Fitting lives in ``fit_text.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

from caveat.calibration.scaling import TemperatureScaled, pooled_logits
from caveat.calibration.shift import TargetShift
from caveat.calibration.store import CALIBRATION_SCORES, load_arrays, prefixed
from caveat.decide.conformal import ConformalClassifier
from caveat.decide.policy import Decision, Policy
from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError
from caveat.models.rundir import Run
from caveat.types import Predictions, Task
from caveat.uncertainty.methods.knn import NearestNeighbours
from caveat.uncertainty.methods.laplace import LastLayerLaplace
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.scores import SCORES, resolve_score_name

ENSEMBLE_KNN = "ensemble_knn"  # arrays "ensemble_knn.<member>.<name>": members 1.. of a deep ensemble
ROUTE_ON = ("set_size",)  # ambiguous between a few labels: a person picks; other triggers abstain
MAX_SET_SIZE = 3


@dataclass
class Calibration(TemperatureScaled):
    """Temperature, decision policy (conformal sets, OOD threshold, risk threshold), Mahalanobis and
    Laplace of a calibrated text run.

    Attributes
    ----------
    temperature : fitted by NLL on the calibration split (Guo et al. 2017).
    policy : answer / abstain / route with the reason.
    score : the uncertainty score the risk threshold reads (``least_confidence`` = 1 - max probability, ...;
        runs calibrated when it was called ``msp`` load under the new name).
    calibration_scores : (N,) ``score`` on the calibration split (the drift alarm's reference), or None
        for runs calibrated before it was stored.
    shift : for a run calibrated to a target domain (``caveat calibrate RUN --target FILE``), the estimator
        of each input's importance weight, which its prediction set needs; else None.
    knn : distance to the nearest training feature (Sun et al. 2022), an OOD score reported beside Mahalanobis;
        None for runs calibrated before it was stored.
    ensemble_temperature : for a deep ensemble (``caveat train --ensemble N``), the temperature of its pooled
        prediction, fitted on the calibration split (``pool``); None for a single model or a run calibrated
        before it was fitted.
    ensemble_pooling : how the ensemble's members are pooled, ``probability`` or ``logit`` (``pooled_logits``),
        chosen by NLL on the calibration split.
    ensemble_knn : for a deep ensemble, the nearest-neighbour banks of members 1.. (member 0's is ``knn``): the
        ensemble's OOD score is the members' mean distance (``ensemble_knn_score``); empty when none was stored.
    """

    temperature: float
    policy: Policy
    score: str
    mahalanobis: Mahalanobis
    risk: RiskControlled
    laplace: LastLayerLaplace | None = None  # runs calibrated before Laplace existed have none
    calibration_scores: np.ndarray | None = None
    shift: TargetShift | None = None
    knn: NearestNeighbours | None = None
    ensemble_temperature: float | None = None
    ensemble_pooling: str = "probability"
    ensemble_knn: list[NearestNeighbours] = field(default_factory=list)

    task = Task.TEXT_CLASSIFICATION

    @classmethod
    def from_run(cls, run: Run) -> Calibration | None:
        """None when the run was never calibrated (``caveat calibrate RUN``)."""
        cal = run.info.get("calibration")
        if not cal or cal.get("task") == Task.TOKEN_CLASSIFICATION.value:
            return None
        arrays = load_arrays(run)
        risk = RiskControlled.from_state(cal["risk"])
        # runs calibrated before the rename stored "msp": serve them under "least_confidence" (one warning here,
        # at load, never per request); the risk state names the same score, so its reasons say the new name too
        score = resolve_score_name(cal["score"])
        if risk.score == cal["score"]:
            risk.score = score
        rules = cal.get("policy", {"route_on": list(ROUTE_ON), "max_set_size": MAX_SET_SIZE})
        policy = Policy(
            conformal=ConformalClassifier.from_state(cal["conformal"]),
            risk=risk,
            ood_threshold=cal["ood"]["threshold"],
            ood_name="mahalanobis",
            route_on=rules["route_on"],
            max_set_size=rules["max_set_size"],
        )
        laplace = None
        if "laplace" in cal:
            laplace = LastLayerLaplace.from_state({"settings": cal["laplace"], "arrays": prefixed(arrays, "laplace")})
        return cls(
            temperature=cal["temperature"],
            policy=policy,
            score=score,
            mahalanobis=Mahalanobis.from_state(prefixed(arrays, "mahalanobis")),
            risk=risk,
            laplace=laplace,
            calibration_scores=arrays.get(CALIBRATION_SCORES),
            shift=TargetShift.from_state(cal["shift"]["model"]) if cal.get("shift") else None,
            knn=NearestNeighbours.from_state(prefixed(arrays, "knn")) if "knn.bank" in arrays else None,
            ensemble_temperature=(cal.get("ensemble") or {}).get("temperature"),
            ensemble_pooling=(cal.get("ensemble") or {}).get("pooling", "probability"),
            ensemble_knn=_member_banks(arrays),
        )

    def pool(self, preds: Predictions) -> np.ndarray:
        """(N, C) probabilities of an ensemble from its members' stacked (M, N, C) predictions: their mean, scaled
        by the ensemble temperature (``pooled_logits``); the plain mean when none was fitted."""
        pooled = pooled_logits(preds.logits, self.ensemble_pooling)
        return softmax(pooled / (self.ensemble_temperature or 1.0), axis=-1)

    def ensemble_knn_score(self, member_features: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's OOD score, (N,): each member's nearest-neighbour distance to its own training features
        (Sun et al. 2022), averaged over the members (their features live in different spaces, so distances, not
        features, are pooled). ``member_features``: one (N, D) array per member, member 0 first."""
        banks = [self.knn, *self.ensemble_knn]
        if self.knn is None or len(banks) != len(member_features):
            raise ConfigError(
                f"the run's calibration holds nearest-neighbour banks for {len(banks) if self.knn else 0} members, "
                f"got the features of {len(member_features)}: run caveat calibrate on the ensemble again"
            )
        return np.mean([bank.score(f) for bank, f in zip(banks, member_features)], axis=0)

    def scores(self, preds: Predictions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Calibrated probabilities (N, C) and uncertainty scores, each (N,), higher = more uncertain."""
        logits = self.scale(preds.logits[0])  # (N, C)
        probs = softmax(logits, axis=-1)
        scores = {
            "least_confidence": SCORES.get("least_confidence")(probs=probs[None]),
            "entropy": SCORES.get("entropy")(probs=probs[None]),
            "energy": SCORES.get("energy")(logits=logits[None]),
            "mahalanobis": self.mahalanobis.score(preds.features),
        }
        if self.knn is not None:
            scores["knn"] = self.knn.score(preds.features)
        return probs, scores

    def decide(self, preds: Predictions) -> tuple[np.ndarray, dict[str, np.ndarray], Decision]:
        """``(probs, uncertainty, Decision)`` for a batch of raw predictions."""
        probs, uncertainty = self.scores(preds)
        weights = None if self.shift is None else self.shift.weights(preds.logits[0])
        decision = self.policy.decide(
            probs, uncertainty=uncertainty[self.score], ood=uncertainty["mahalanobis"], weights=weights
        )
        return probs, uncertainty, decision

    def judge(self, preds: Predictions) -> list[dict]:
        """Per input: calibrated probabilities, uncertainty scores, prediction set, action and reason."""
        probs, uncertainty, decision = self.decide(preds)
        return [
            {
                "probs": probs[i],
                "uncertainty": {k: float(v[i]) for k, v in uncertainty.items()},
                "prediction_set": [preds.labels[c] for c in np.flatnonzero(decision.prediction_set[i])],
                "decision": str(decision.action[i]),
                "reason": decision.reason[i],
            }
            for i in range(len(probs))
        ]


def _member_banks(arrays: dict[str, np.ndarray]) -> list[NearestNeighbours]:
    """The nearest-neighbour banks of ensemble members 1.., in member order ([] when none were stored)."""
    members = sorted({int(k.split(".")[1]) for k in arrays if k.startswith(ENSEMBLE_KNN + ".")})
    return [NearestNeighbours.from_state(prefixed(arrays, f"{ENSEMBLE_KNN}.{m}")) for m in members]
