"""The calibration stage of a run: fit temperature, conformal quantiles, an abstention threshold with
a risk guarantee, and a Mahalanobis OOD threshold on the run's calibration split; apply them at
prediction time. Fitted values live in ``caveat.json`` (JSON) and ``calibration.safetensors`` (arrays).

Text classification for now; token tasks get span-level calibration in a later step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError, RunDirError
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import RUN_FILE, Run, open_run
from caveat.types import Predictions, Task

ARRAYS_FILE = "calibration.safetensors"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _label_ids(run: Run, split) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(run.labels)}
    return np.array([index[ex.label] for ex in split.examples])


def calibrate_run(run_dir: str | Path | Run, *, alpha: float = 0.1, conformal: str = "lac", score: str = "msp",
                  target_risk: float = 0.02, delta: float = 0.05, ood_tpr: float = 0.95, batch_size: int | None = None) -> dict:
    """Fit every calibrated quantity on the calibration split (never on test) and save it with the run.

    - temperature scaling (Guo et al. 2017) by NLL;
    - split-conformal sets at level ``1 - alpha`` on the temperature-scaled probabilities;
    - a Learn-then-Test abstention threshold on ``score`` so that the error rate of answered inputs
      is <= ``target_risk`` with probability >= ``1 - delta`` (abstains on all when infeasible);
    - Mahalanobis distance (Lee et al. 2018) fitted on train features, thresholded to keep
      ``ood_tpr`` of in-scope calibration inputs.
    Returns a summary (also stored under ``calibration`` in caveat.json).
    """
    from safetensors.numpy import save_file

    from caveat.data.load import load_data
    from caveat.decide.conformal import ConformalClassifier
    from caveat.decide.risk import RiskControlled
    from caveat.evaluation.calibration import ece, nll
    from caveat.inference import Predictor
    from caveat.uncertainty.methods.mahalanobis import Mahalanobis
    from caveat.uncertainty.methods.temperature import TemperatureScaling
    from caveat.uncertainty.scores import SCORES

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(f"caveat calibrate supports text-classification runs for now; {run.path} is {run.task.value}")
    splits = load_data(run.config)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    cal = splits.calibration
    y = _label_ids(run, cal)
    preds = predictor.predict([ex.text for ex in cal.examples])
    logits = preds.logits[0]  # (N, C)
    ts = TemperatureScaling().fit(logits, y)
    probs = _softmax(ts.transform(logits))  # (N, C)
    cp = ConformalClassifier(conformal, alpha).calibrate(probs, y)
    scores = SCORES.get(score)(probs=probs[None], logits=ts.transform(logits)[None])
    risk = RiskControlled(target_risk, delta, score=score, allow_empty=True).calibrate(scores, probs.argmax(-1) != y)

    train = predictor.predict([ex.text for ex in splits.train.examples])
    maha = Mahalanobis().fit(train.features, _label_ids(run, splits.train))
    ood_threshold = float(np.quantile(maha.score(preds.features), ood_tpr))
    tmp = run.path / f".{ARRAYS_FILE}.tmp"  # atomic: a reader never sees half a file
    save_file({f"mahalanobis.{k}": np.ascontiguousarray(v) for k, v in maha.state().items()}, str(tmp))
    os.replace(tmp, run.path / ARRAYS_FILE)

    summary = {
        "fitted_on": "calibration",
        "n": int(len(y)),
        "temperature": ts.temperature,
        "nll_before": float(nll(_softmax(logits), y)),
        "nll_after": float(nll(probs, y)),
        "ece_before": float(ece(_softmax(logits), y)),
        "ece_after": float(ece(probs, y)),
        "conformal": cp.state(),
        "risk": risk.state(),
        "score": score,
        "ood": {"method": "mahalanobis", "threshold": ood_threshold, "tpr": ood_tpr},
    }
    info = read_json(run.path / RUN_FILE)
    info["calibration"] = summary
    write_json_atomic(run.path / RUN_FILE, info)
    return summary


@dataclass
class Caveats:
    """The fitted calibration of a run, applied to ``Predictions``."""

    temperature: float
    policy: object
    score: str
    mahalanobis: object
    risk: object

    @classmethod
    def from_run(cls, run: Run) -> "Caveats | None":
        """None when the run was never calibrated (``caveat calibrate RUN``)."""
        from safetensors.numpy import load_file

        from caveat.decide.conformal import ConformalClassifier
        from caveat.decide.policy import Policy
        from caveat.decide.risk import RiskControlled
        from caveat.uncertainty.methods.mahalanobis import Mahalanobis

        cal = run.info.get("calibration")
        if not cal:
            return None
        if not (run.path / ARRAYS_FILE).is_file():
            raise RunDirError(f"{run.path} lacks {ARRAYS_FILE}; run caveat calibrate {run.path} again")
        arrays = load_file(str(run.path / ARRAYS_FILE))
        maha = Mahalanobis.from_state({k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("mahalanobis.")})
        risk = RiskControlled.from_state(cal["risk"])
        policy = Policy(conformal=ConformalClassifier.from_state(cal["conformal"]), risk=risk,
                        ood_threshold=cal["ood"]["threshold"], ood_name="mahalanobis", route_on=("set_size",),
                        max_set_size=3)
        return cls(temperature=cal["temperature"], policy=policy, score=cal["score"], mahalanobis=maha, risk=risk)

    def scores(self, preds: Predictions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Calibrated probabilities (N, C) and uncertainty scores, each (N,), higher = more uncertain."""
        from caveat.uncertainty.scores import SCORES

        logits = preds.logits[0] / self.temperature  # (N, C)
        probs = _softmax(logits)
        return probs, {
            "msp": SCORES.get("msp")(probs=probs[None]),
            "entropy": SCORES.get("entropy")(probs=probs[None]),
            "energy": SCORES.get("energy")(logits=logits[None]),
            "mahalanobis": self.mahalanobis.score(preds.features),
        }

    def decide(self, preds: Predictions):
        """``(probs, uncertainty, Decision)`` for a batch of predictions."""
        probs, uncertainty = self.scores(preds)
        decision = self.policy.decide(probs, uncertainty=uncertainty[self.score], ood=uncertainty["mahalanobis"])
        return probs, uncertainty, decision

    def apply(self, preds: Predictions) -> list[dict]:
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
