"""The calibration stage of a run: fit temperature, conformal quantiles, an abstention threshold with
a risk guarantee, and a Mahalanobis OOD threshold on the run's calibration split; apply them at
prediction time. Fitted values live in ``caveat.json`` (JSON) and ``calibration.safetensors`` (arrays).

Token-classification (NER) runs are calibrated at the span level: see calibrate_spans.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError, RunDirError
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import RUN_FILE, Run, open_run
from caveat.types import Predictions, Task

ARRAYS_FILE = "calibration.safetensors"
CALIBRATION_SCORES = "scores.calibration"  # key in ARRAYS_FILE: the ``score`` of each calibration input
ROUTE_ON = ("set_size",)  # ambiguous between a few labels: a person picks; other triggers abstain
MAX_SET_SIZE = 3
RISK_STARTS = 2  # fixed sequences of the risk threshold (decide/risk.py): robust to one early error; NER spans use 4


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _label_ids(run: Run, split) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(run.labels)}
    return np.array([index[ex.label] for ex in split.examples])


def calibrate_run(run_dir: str | Path | Run, *, alpha: float = 0.1, conformal: str = "lac", score: str = "msp",
                  target_risk: float = 0.02, delta: float = 0.05, ood_tpr: float = 0.95,
                  ood: Sequence[str] = (), ood_rate: float | None = None, batch_size: int | None = None) -> dict:
    """Fit every calibrated quantity on the calibration split (never on test) and save it with the run.

    - temperature scaling (Guo et al. 2017) by NLL;
    - split-conformal sets at level ``1 - alpha`` on the temperature-scaled probabilities;
    - Mahalanobis distance (Lee et al. 2018) fitted on train features, thresholded to keep
      ``ood_tpr`` of in-scope *validation* inputs (so it is fixed before the risk threshold is chosen);
    - a Learn-then-Test abstention threshold on ``score`` so that the error rate of answered inputs
      is <= ``target_risk`` with probability >= ``1 - delta`` (abstains on all when infeasible). The
      answered set it controls is the whole policy's: inputs that the OOD or prediction-set checks
      stop are never answered. With ``ood`` (out-of-scope sets: names from the run's ``data.ood`` or
      files of texts), the bound covers deployment traffic with a share ``ood_rate`` of out-of-scope
      inputs, every answer to them counted as an error (default share: theirs in the calibration data).
    Returns a summary (also stored under ``calibration`` in caveat.json).
    """
    from safetensors.numpy import save_file

    from caveat.data.load import load_data
    from caveat.decide.conformal import ConformalClassifier
    from caveat.decide.policy import Policy
    from caveat.decide.risk import RiskControlled
    from caveat.evaluation.calibration import ece, nll
    from caveat.inference import Predictor
    from caveat.uncertainty.methods.laplace import LastLayerLaplace
    from caveat.uncertainty.methods.mahalanobis import Mahalanobis
    from caveat.uncertainty.methods.temperature import TemperatureScaling
    from caveat.uncertainty.scores import SCORES

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if run.task is Task.TOKEN_CLASSIFICATION:
        from caveat.calibrate_spans import calibrate_token_run

        if ood or ood_rate is not None:
            raise ConfigError("--ood / --ood-rate are for text-classification runs; a NER run flags low-confidence spans instead")
        return calibrate_token_run(run, target_risk=target_risk, delta=delta, batch_size=batch_size)
    from caveat.evaluation.run import ood_texts

    splits = load_data(run.config)
    ood_inputs = [t for name in ood for t in ood_texts(run, name, lambda: splits)]
    if ood and not ood_inputs:
        raise ConfigError(f"the out-of-scope calibration sets {', '.join(ood)} hold no texts")
    predictor = Predictor.from_run(run, batch_size=batch_size)
    cal = splits.calibration
    y = _label_ids(run, cal)
    preds = predictor.predict([ex.text for ex in cal.examples])
    logits = preds.logits[0]  # (N, C)
    ts = TemperatureScaling().fit(logits, y)
    probs = _softmax(ts.transform(logits))  # (N, C)
    cp = ConformalClassifier(conformal, alpha).calibrate(probs, y)

    train = predictor.predict([ex.text for ex in splits.train.examples])
    maha = Mahalanobis().fit(train.features, _label_ids(run, splits.train))
    validation = predictor.predict([ex.text for ex in splits.validation.examples])
    ood_threshold = float(np.quantile(maha.score(validation.features), ood_tpr))

    # the risk threshold is chosen last, on what the other checks let through (+inf: never answered)
    gate = Policy(conformal=cp, ood_threshold=ood_threshold, route_on=ROUTE_ON, max_set_size=MAX_SET_SIZE)
    scorer = SCORES.get(score)

    def gated_scores(p: Predictions) -> np.ndarray:
        z = ts.transform(p.logits[0])
        q = _softmax(z)
        passed = gate.decide(q, ood=maha.score(p.features)).answered
        return np.where(passed, scorer(probs=q[None], logits=z[None]), np.inf)

    risk = RiskControlled(target_risk, delta, score=score, allow_empty=True, starts=RISK_STARTS)
    errors = probs.argmax(-1) != y
    if ood_inputs:
        ood_scores = gated_scores(predictor.predict(ood_inputs))
        rate = ood_rate if ood_rate is not None else len(ood_inputs) / (len(ood_inputs) + len(y))
        risk.calibrate(gated_scores(preds), errors, ood_scores=ood_scores, ood_rate=rate)
    elif ood_rate is not None:
        raise ConfigError(f"ood_rate={ood_rate} needs out-of-scope calibration texts: pass ood=[name or file]")
    else:
        risk.calibrate(gated_scores(preds), errors)

    head = predictor.model.head
    laplace = LastLayerLaplace().fit(train.features, _label_ids(run, splits.train),
                                     head.weight.detach().float().numpy(), head.bias.detach().float().numpy())
    laplace.tune_prior_precision(validation.features, _label_ids(run, splits.validation))
    laplace_state = laplace.state()

    tmp = run.path / f".{ARRAYS_FILE}.tmp"  # atomic: a reader never sees half a file
    arrays = {f"mahalanobis.{k}": np.ascontiguousarray(v) for k, v in maha.state().items()}
    arrays.update({f"laplace.{k}": np.ascontiguousarray(v, dtype=np.float64) for k, v in laplace_state["arrays"].items()})
    arrays[CALIBRATION_SCORES] = np.ascontiguousarray(  # (N,) ungated, as Caveats.scores gives: the service's drift reference
        SCORES.get(score)(probs=probs[None], logits=ts.transform(logits)[None]), dtype=np.float64)
    save_file(arrays, str(tmp))
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
        "ood": {"method": "mahalanobis", "threshold": ood_threshold, "tpr": ood_tpr, "fitted_on": "validation"},
        "laplace": laplace_state["settings"],
        "policy": {"route_on": list(ROUTE_ON), "max_set_size": MAX_SET_SIZE},
        "risk_ood_calibration": {"sets": list(ood), "n": len(ood_inputs)} if ood_inputs else None,
    }
    return save_calibration(run, summary)


def save_calibration(run: Run, summary: dict) -> dict:
    """Store ``summary`` under ``calibration`` in the run's caveat.json (atomically); returns it."""
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
    laplace: object | None = None  # runs calibrated before Laplace existed have none
    calibration_scores: np.ndarray | None = None  # (N,) ``score`` on the calibration split; None for older runs

    @classmethod
    def from_run(cls, run: Run) -> "Caveats | None":
        """None when the run was never calibrated (``caveat calibrate RUN``)."""
        from safetensors.numpy import load_file

        from caveat.decide.conformal import ConformalClassifier
        from caveat.decide.policy import Policy
        from caveat.decide.risk import RiskControlled
        from caveat.uncertainty.methods.mahalanobis import Mahalanobis

        cal = run.info.get("calibration")
        if not cal or cal.get("task") == Task.TOKEN_CLASSIFICATION.value:  # NER: calibrate_spans.SpanCaveats
            return None
        if not (run.path / ARRAYS_FILE).is_file():
            raise RunDirError(f"{run.path} lacks {ARRAYS_FILE}; run caveat calibrate {run.path} again")
        arrays = load_file(str(run.path / ARRAYS_FILE))
        maha = Mahalanobis.from_state({k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("mahalanobis.")})
        risk = RiskControlled.from_state(cal["risk"])
        rules = cal.get("policy", {"route_on": ["set_size"], "max_set_size": 3})
        policy = Policy(conformal=ConformalClassifier.from_state(cal["conformal"]), risk=risk,
                        ood_threshold=cal["ood"]["threshold"], ood_name="mahalanobis", route_on=rules["route_on"],
                        max_set_size=rules["max_set_size"])
        laplace = None
        if "laplace" in cal:
            from caveat.uncertainty.methods.laplace import LastLayerLaplace

            laplace = LastLayerLaplace.from_state({"settings": cal["laplace"], "arrays": {
                k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("laplace.")}})
        return cls(temperature=cal["temperature"], policy=policy, score=cal["score"], mahalanobis=maha, risk=risk,
                   laplace=laplace,
                   calibration_scores=arrays.get(CALIBRATION_SCORES))

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
