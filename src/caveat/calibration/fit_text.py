"""Calibrate a text-classification run: fit temperature, conformal quantiles, a Mahalanobis OOD
threshold, last-layer Laplace and a risk-controlled abstention threshold on the run's calibration
split, and save them with the run (``store.py``). ``Calibration`` (text.py) applies them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from caveat.calibration.store import CALIBRATION_SCORES, save_arrays, save_calibration
from caveat.calibration.text import MAX_SET_SIZE, ROUTE_ON
from caveat.data.load import load_data
from caveat.data.resolve import ood_texts
from caveat.decide.conformal import ConformalClassifier
from caveat.decide.policy import Policy
from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError
from caveat.evaluation.calibration import ece, nll
from caveat.inference import Predictor
from caveat.models.rundir import Run
from caveat.types import Predictions, Split
from caveat.uncertainty.methods.laplace import LastLayerLaplace
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.temperature import TemperatureScaling
from caveat.uncertainty.scores import SCORES

RISK_STARTS = 2  # start points of the fallback procedure (decide/risk.py): robust to one early error; NER spans use 4


def _label_ids(run: Run, split: Split) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(run.labels)}
    return np.array([index[ex.label] for ex in split.examples])


@dataclass
class Passes:
    """The deterministic passes calibration needs, each run once: calibration, train and validation."""

    calibration: Predictions
    train: Predictions
    validation: Predictions
    y: np.ndarray  # (N,) calibration labels
    y_train: np.ndarray
    y_validation: np.ndarray


def calibrate_text(
    run: Run,
    *,
    alpha: float = 0.1,
    conformal: str = "lac",
    score: str = "msp",
    target_risk: float = 0.02,
    delta: float = 0.05,
    ood_tpr: float = 0.95,
    ood: Sequence[str] = (),
    ood_rate: float | None = None,
    batch_size: int | None = None,
) -> dict:
    """Fit every calibrated quantity of a text run on its calibration split (never on test); see
    ``caveat.calibration.run.calibrate_run`` for the parameters. Returns the summary stored in caveat.json."""
    splits = functools.cache(lambda: load_data(run.config))
    ood_inputs = [t for name in ood for t in ood_texts(run, name, splits)]
    if ood and not ood_inputs:
        raise ConfigError(f"the out-of-scope calibration sets {', '.join(ood)} hold no texts")
    if ood_rate is not None and not ood_inputs:
        raise ConfigError(
            f"{{ood_rate}}={ood_rate} needs out-of-scope calibration texts: pass {{ood}}=[name or file]",
            fields=("ood_rate", "ood"),
        )
    predictor = Predictor.from_run(run, batch_size=batch_size, calibrated=False)  # refits: the old fit is not used
    passes = predict_splits(run, predictor, splits())
    logits = passes.calibration.logits[0]  # (N, C)
    gate = fit_gate(passes, alpha=alpha, conformal=conformal, score=score, ood_tpr=ood_tpr)
    risk = RiskControlled(target_risk, delta, score=score, allow_empty=True, starts=RISK_STARTS)
    errors = gate.probs.argmax(-1) != passes.y
    if ood_inputs:
        rate = ood_rate if ood_rate is not None else len(ood_inputs) / (len(ood_inputs) + len(passes.y))
        ood_scores = gate.scorer(predictor.predict(ood_inputs))
        risk.calibrate(gate.scorer(passes.calibration), errors, ood_scores=ood_scores, ood_rate=rate)
    else:
        risk.calibrate(gate.scorer(passes.calibration), errors)
    laplace = _fit_laplace(predictor, passes)
    # (N,) ungated, as Calibration.scores gives: the service's drift reference
    reference = SCORES.get(score)(probs=gate.probs[None], logits=gate.temperature.transform(logits)[None])
    _save_arrays(run, gate.mahalanobis, laplace, reference)
    summary = {
        **_fit_figures(gate.temperature, logits, gate.probs, passes.y),
        "conformal": gate.conformal.state(),
        "risk": risk.state(),
        "score": score,
        "ood": {"method": "mahalanobis", "threshold": gate.ood_threshold, "tpr": ood_tpr, "fitted_on": "validation"},
        "laplace": laplace.state()["settings"],
        "policy": {"route_on": list(ROUTE_ON), "max_set_size": MAX_SET_SIZE},
        "risk_ood_calibration": {"sets": list(ood), "n": len(ood_inputs)} if ood_inputs else None,
    }
    return save_calibration(run, summary)


@dataclass
class Gate:
    """What is fitted before the risk threshold: temperature, conformal sets and the Mahalanobis OOD check, and the
    risk threshold's score of what they let through (``scorer``: +inf for what they stop)."""

    temperature: TemperatureScaling
    probs: np.ndarray  # (N, C) temperature-scaled calibration probabilities
    conformal: ConformalClassifier
    mahalanobis: Mahalanobis
    ood_threshold: float
    scorer: Callable[[Predictions], np.ndarray]


def fit_gate(passes: Passes, *, alpha: float, conformal: str, score: str, ood_tpr: float) -> Gate:
    """Temperature and conformal sets on the calibration split, Mahalanobis on train with its threshold keeping
    ``ood_tpr`` of validation inputs (fixed before the risk threshold is chosen)."""
    logits = passes.calibration.logits[0]  # (N, C)
    ts = TemperatureScaling().fit(logits, passes.y)
    probs = softmax(ts.transform(logits), axis=-1)  # (N, C)
    cp = ConformalClassifier(conformal, alpha).calibrate(probs, passes.y)
    maha = Mahalanobis().fit(passes.train.features, passes.y_train)
    ood_threshold = float(np.quantile(maha.score(passes.validation.features), ood_tpr))
    policy = Policy(conformal=cp, ood_threshold=ood_threshold, route_on=ROUTE_ON, max_set_size=MAX_SET_SIZE)
    return Gate(ts, probs, cp, maha, ood_threshold, _gated_scorer(ts, policy, maha, score))


def _fit_figures(ts: TemperatureScaling, logits: np.ndarray, probs: np.ndarray, y: np.ndarray) -> dict:
    """The temperature and NLL / ECE on the calibration split before and after it."""
    raw = softmax(logits, axis=-1)
    return {
        "fitted_on": "calibration",
        "n": int(len(y)),
        "temperature": ts.temperature,
        "nll_before": float(nll(raw, y)),
        "nll_after": float(nll(probs, y)),
        "ece_before": float(ece(raw, y)),
        "ece_after": float(ece(probs, y)),
    }


def predict_splits(run: Run, predictor: Predictor, splits) -> Passes:
    """One deterministic pass over the calibration, train and validation splits."""

    def texts(split: Split) -> list[str]:
        return [ex.text for ex in split.examples]

    return Passes(
        calibration=predictor.predict(texts(splits.calibration)),
        train=predictor.predict(texts(splits.train)),
        validation=predictor.predict(texts(splits.validation)),
        y=_label_ids(run, splits.calibration),
        y_train=_label_ids(run, splits.train),
        y_validation=_label_ids(run, splits.validation),
    )


def _gated_scorer(ts: TemperatureScaling, gate: Policy, maha: Mahalanobis, score: str):
    """``score`` of what the OOD and prediction-set checks let through, +inf for what they stop: the risk
    threshold is chosen last, on the inputs the policy can actually answer."""
    scorer = SCORES.get(score)

    def gated(p: Predictions) -> np.ndarray:
        z = ts.transform(p.logits[0])
        q = softmax(z, axis=-1)
        passed = gate.decide(q, ood=maha.score(p.features)).answered
        return np.where(passed, scorer(probs=q[None], logits=z[None]), np.inf)

    return gated


def _fit_laplace(predictor: Predictor, passes: Passes) -> LastLayerLaplace:
    """Last-layer Laplace on train features; prior precision tuned on validation. A head without a bias (decoder
    classifiers' ``score``) counts as one with a zero bias."""
    head = predictor.model.head
    weight = head.weight.detach().float().numpy()  # (C, D)
    bias = head.bias.detach().float().numpy() if head.bias is not None else np.zeros(len(weight), dtype=np.float32)
    laplace = LastLayerLaplace().fit(passes.train.features, passes.y_train, weight, bias)
    return laplace.tune_prior_precision(passes.validation.features, passes.y_validation)


def _save_arrays(run: Run, maha: Mahalanobis, laplace: LastLayerLaplace, reference: np.ndarray) -> None:
    arrays = {f"mahalanobis.{k}": v for k, v in maha.state().items()}
    arrays.update({f"laplace.{k}": np.asarray(v, dtype=np.float64) for k, v in laplace.state()["arrays"].items()})
    arrays[CALIBRATION_SCORES] = np.asarray(reference, dtype=np.float64)
    save_arrays(run, arrays)
