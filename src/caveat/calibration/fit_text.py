"""Calibrate a text-classification run: fit temperature, conformal quantiles, a Mahalanobis OOD
threshold, last-layer Laplace and a risk-controlled abstention threshold on the run's calibration
split, and save them with the run (``store.py``). ``Calibration`` (text.py) applies them."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from caveat.calibration.scaling import POOLINGS, pooled_logits
from caveat.calibration.shift import TargetShift, choose_temperature, weight_figures, weight_warnings
from caveat.calibration.store import CALIBRATION_SCORES, save_arrays, save_calibration
from caveat.calibration.text import ENSEMBLE_KNN, MAX_SET_SIZE, ROUTE_ON
from caveat.data.load import carves, load_data, split_seed
from caveat.data.resolve import ood_texts
from caveat.data.splits import DataSplits
from caveat.decide.conformal import ConformalClassifier
from caveat.decide.policy import Policy
from caveat.decide.risk import RiskControlled
from caveat.decide.shift import rejection_sample
from caveat.errors import ConfigError
from caveat.evaluation.calibration import ece, nll
from caveat.inference import Predictor, ensemble_predict
from caveat.models.rundir import Run, open_run
from caveat.progress import subject
from caveat.types import Predictions, Split
from caveat.uncertainty.methods.knn import NearestNeighbours
from caveat.uncertainty.methods.laplace import LastLayerLaplace
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.temperature import TemperatureScaling
from caveat.uncertainty.scores import SCORES, resolve_score_name

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
    score: str = "least_confidence",
    target_risk: float = 0.02,
    delta: float = 0.05,
    ood_tpr: float = 0.95,
    ood: Sequence[str] = (),
    ood_rate: float | None = None,
    target: Sequence[str] = (),
    target_source: str | None = None,
    batch_size: int | None = None,
) -> dict:
    """Fit every calibrated quantity of a text run on its calibration split (never on test); see
    ``caveat.calibration.run.calibrate_run`` for the parameters. Returns the summary stored in caveat.json.

    With ``target`` (unlabelled texts of the domain the run will serve, read from ``target_source``), the
    calibration examples are importance-weighted towards it (``shift.py``): the temperature (kept only
    when it wins by importance-weighted cross-validation), the prediction sets and, through a rejection
    sample, the abstention threshold."""
    score = resolve_score_name(score)  # an old name ("msp") warns the caller and is stored as the new one
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
    with subject("target texts"):
        target_preds = predictor.predict(list(target)) if len(target) else None
    gate = fit_gate(
        passes,
        alpha=alpha,
        conformal=conformal,
        score=score,
        ood_tpr=ood_tpr,
        target_logits=None if target_preds is None else target_preds.logits[0],
        seed=run.config.seed,
    )
    risk = RiskControlled(target_risk, delta, score=score, allow_empty=True, starts=RISK_STARTS)
    errors = gate.probs.argmax(-1) != passes.y
    # under a target shift the threshold is chosen on a rejection sample of the calibration split that
    # follows the target distribution (Park et al. 2022); otherwise on all of it
    keep = np.ones(len(errors), bool) if gate.shift is None else rejection_sample(gate.weights, seed=run.config.seed)
    cal_scores = gate.scorer(passes.calibration)
    if ood_inputs:
        rate = ood_rate if ood_rate is not None else len(ood_inputs) / (len(ood_inputs) + len(passes.y))
        with subject("out-of-scope texts"):
            ood_scores = gate.scorer(predictor.predict(ood_inputs))
        risk.calibrate(cal_scores[keep], errors[keep], ood_scores=ood_scores, ood_rate=rate)
    else:
        risk.calibrate(cal_scores[keep], errors[keep])
    laplace = _fit_laplace(predictor, passes)
    # (N,) ungated, as Calibration.scores gives: the service's drift reference; the target's texts when given,
    # since they are what traffic now looks like
    seen = logits if target_preds is None else target_preds.logits[0]
    z = gate.temperature.transform(seen)
    reference = SCORES.get(score)(probs=softmax(z, axis=-1)[None], logits=z[None])
    knn = NearestNeighbours(seed=run.config.seed).fit(passes.train.features)  # an OOD score beside Mahalanobis
    members, member_arrays = predictor.ensemble(), {}
    if len(members) > 1:
        ensemble, member_arrays = _fit_ensemble(members, splits(), passes, seed=run.config.seed)
    _save_arrays(run, gate.mahalanobis, laplace, reference, knn, member_arrays)
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
    if gate.shift is not None:
        summary["shift"] = _shift_summary(gate, target_preds, target_source, keep, alpha)
    if len(members) > 1:
        summary["ensemble"] = ensemble
        mixed = mixed_split_members(run)
        if mixed:
            ensemble["warning"] = (
                f"ensemble members {', '.join(mixed)} carved their data splits with another seed than member 0 "
                "(trained before members shared one split): they may have trained or stopped early on member 0's "
                "calibration examples, which makes this calibration optimistic. Retrain with caveat train --ensemble N."
            )
            warnings.warn(ensemble["warning"], UserWarning, stacklevel=2)
    return save_calibration(run, summary)


def mixed_split_members(run: Run) -> list[str]:
    """The ensemble members (their folders, as caveat.json lists them) whose carved splits differ from member 0's;
    [] when none does or when nothing is carved."""
    if not carves(run.config):
        return []
    own = split_seed(run.config)
    names = run.info.get("ensemble", {}).get("members", [])
    return [m for m in names if split_seed(open_run(run.path / m).config) != own]


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
    policy: Policy
    shift: TargetShift | None = None  # with a target domain: its importance weights' estimator
    weights: np.ndarray | None = None  # (N,) the calibration examples' importance weights
    temperature_choice: dict | None = None  # choose_temperature's report


def fit_gate(
    passes: Passes,
    *,
    alpha: float,
    conformal: str,
    score: str,
    ood_tpr: float,
    target_logits: np.ndarray | None = None,
    seed: int = 0,
) -> Gate:
    """Temperature and conformal sets on the calibration split, Mahalanobis on train with its threshold keeping
    ``ood_tpr`` of validation inputs (fixed before the risk threshold is chosen). With ``target_logits``
    ``(M, C)`` of unlabelled target inputs, the temperature and the sets are fitted for the target domain."""
    logits = passes.calibration.logits[0]  # (N, C)
    ts = TemperatureScaling().fit(logits, passes.y)
    shift = weights = choice = None
    if target_logits is not None:
        shift = TargetShift.fit(logits, target_logits, ts.temperature, seed=seed)
        weights = shift.weights(logits)
        ts, choice = choose_temperature(logits, passes.y, weights, seed=seed)
    probs = softmax(ts.transform(logits), axis=-1)  # (N, C)
    # never an empty set: an input no label fits gets its top label, which the risk threshold then judges
    cp = ConformalClassifier(conformal, alpha, nonempty=True).calibrate(probs, passes.y, weights=weights)
    maha = Mahalanobis().fit(passes.train.features, passes.y_train)
    ood_threshold = float(np.quantile(maha.score(passes.validation.features), ood_tpr))
    policy = Policy(conformal=cp, ood_threshold=ood_threshold, route_on=ROUTE_ON, max_set_size=MAX_SET_SIZE)
    scorer = _gated_scorer(ts, policy, maha, score, shift)
    return Gate(ts, probs, cp, maha, ood_threshold, scorer, policy, shift, weights, choice)


def _shift_summary(gate: Gate, target: Predictions, source: str | None, keep: np.ndarray, alpha: float) -> dict:
    """What the target calibration did, in figures and words (``calibration.shift`` in caveat.json)."""
    figures = weight_figures(gate.shift.ratio, gate.weights, keep)
    ess = figures["effective_sample_size"]
    n, n_target = len(gate.weights), len(target.logits[0])
    stopped = gate.mahalanobis.score(target.features) > gate.ood_threshold
    words = (
        f"calibrated for {n_target} unlabelled target texts: the {n} calibration examples, "
        f"importance-weighted, are worth {ess:.0f} (effective sample size); "
        f"{'the weighted' if gate.temperature_choice['kept'] == 'weighted_temperature' else 'the plain'} "
        f"temperature {gate.temperature.temperature:.3g} was kept; {1 - alpha:.0%} prediction sets are weighted "
        f"per input and the abstention threshold was chosen on {int(keep.sum())} examples drawn to look like the "
        "target. These guarantees hold if the weights are right: they are estimated, and assume the chance of "
        "each label given the model's log-probabilities is the same in both domains."
    )
    words += weight_warnings(ess, gate.shift.ratio.auroc)
    if stopped.mean() > 0.2:
        words += (
            f" The out-of-distribution check stops {stopped.mean():.0%} of the target texts (fitted on in-domain "
            "validation): if they are in scope, retrain with data like them."
        )
    return {
        "target": source,
        "n_target": n_target,
        **figures,
        "temperature": gate.temperature_choice,
        "ood_stopped_target": float(stopped.mean()),
        "model": gate.shift.state(),
        "summary": words,
    }


def _fit_ensemble(
    members: list[Predictor], splits: DataSplits, passes: Passes, *, seed: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """A deep ensemble's own calibration: its members pooled (mean probability, or mean log-probability: the one
    with the lower NLL after its temperature) and one temperature for the pool, both fitted on the calibration
    split ("pool then calibrate", Rahaman & Thiery 2021), so that the ensemble is calibrated as a whole and not
    only its first member. Not importance-weighted under a target shift. Also each further member's bank of
    training features, for the ensemble's nearest-neighbour OOD score (``Calibration.ensemble_knn``): one more
    pass over the training split per member. Returns the summary and the arrays to store."""
    with subject("ensemble members"):
        stacked = ensemble_predict(members, [ex.text for ex in splits.calibration.examples], first=passes.calibration)
    fits = {}
    for pooling in POOLINGS:
        pooled = pooled_logits(stacked.logits, pooling)  # (N, C) log-probabilities
        ts = TemperatureScaling().fit(pooled, passes.y)
        fits[pooling] = (ts, pooled, softmax(ts.transform(pooled), axis=-1))
    losses = {k: nll(probs, passes.y) for k, (_, _, probs) in fits.items()}
    pooling = min(losses, key=losses.get)
    summary = {
        "members": len(members),
        "pooling": pooling,
        "nll_by_pooling": losses,
        **_fit_figures(*fits[pooling], passes.y),
    }
    texts, arrays = [ex.text for ex in splits.train.examples], {}
    for i, member in enumerate(members[1:], start=1):
        with subject(f"ensemble member {i}: training features"):
            bank = NearestNeighbours(seed=seed).fit(member.predict(texts).features)
        arrays.update({f"{ENSEMBLE_KNN}.{i}.{k}": v for k, v in bank.state().items()})
    return summary, arrays


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

    def predict(split: Split, name: str) -> Predictions:
        with subject(name):
            return predictor.predict([ex.text for ex in split.examples])

    return Passes(
        calibration=predict(splits.calibration, "calibration"),
        train=predict(splits.train, "train"),
        validation=predict(splits.validation, "validation"),
        y=_label_ids(run, splits.calibration),
        y_train=_label_ids(run, splits.train),
        y_validation=_label_ids(run, splits.validation),
    )


def _gated_scorer(ts: TemperatureScaling, gate: Policy, maha: Mahalanobis, score: str, shift: TargetShift | None):
    """``score`` of what the OOD and prediction-set checks let through, +inf for what they stop: the risk
    threshold is chosen last, on the inputs the policy can actually answer."""
    scorer = SCORES.get(score)

    def gated(p: Predictions) -> np.ndarray:
        z = ts.transform(p.logits[0])
        q = softmax(z, axis=-1)
        weights = None if shift is None else shift.weights(p.logits[0])
        passed = gate.decide(q, ood=maha.score(p.features), weights=weights).answered
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


def _save_arrays(
    run: Run,
    maha: Mahalanobis,
    laplace: LastLayerLaplace,
    reference: np.ndarray,
    knn: NearestNeighbours,
    member_arrays: dict[str, np.ndarray],
) -> None:
    arrays = {f"mahalanobis.{k}": v for k, v in maha.state().items()}
    arrays.update(member_arrays)
    arrays.update({f"knn.{k}": v for k, v in knn.state().items()})
    arrays.update({f"laplace.{k}": np.asarray(v, dtype=np.float64) for k, v in laplace.state()["arrays"].items()})
    arrays[CALIBRATION_SCORES] = np.asarray(reference, dtype=np.float64)
    save_arrays(run, arrays)
