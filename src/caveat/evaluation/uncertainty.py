"""Calibration, selective-prediction, conformal and OOD figures of a run on one split.

Keys (stable, see docs/metrics.md): raw-model ``ece``, ``brier``, ``aurc``; ``calibrated.*`` after the
run's temperature; ``conformal.coverage`` / ``conformal.set_size``; ``abstention.risk`` /
``abstention.coverage``; with OOD data, ``ood.<score>.auroc`` / ``ood.<score>.fpr95`` and the policy's
``decisions`` over in-scope + out-of-scope inputs.
"""

from __future__ import annotations

import numpy as np

from caveat.evaluation import calibration as cm
from caveat.types import Predictions
from caveat.uncertainty.scores import SCORES


def selective(probs: np.ndarray, y: np.ndarray, score: np.ndarray) -> dict:
    """Calibration of ``probs`` (N, C) against ``y`` (N,) and selective prediction by ``score`` (N,)."""
    errors = probs.argmax(-1) != y
    return {
        "ece": cm.ece(probs, y),
        "ece_adaptive": cm.ece(probs, y, adaptive=True),
        "ece_noise": cm.ece_noise(probs),  # what ECE a calibrated model shows on this many inputs
        "brier": cm.brier(probs, y),
        "nll": cm.nll(probs, y),
        "aurc": cm.aurc(score, errors),
        "error_auroc": cm.error_detection_auroc(score, errors) if 0 < errors.sum() < len(errors) else None,
        **{f"accuracy_at_{int(c * 100)}": cm.accuracy_at_coverage(score, ~errors, c) for c in (0.8, 0.9, 0.95)},
    }


def uncertainty_metrics(
    preds: Predictions, y: np.ndarray, caveats=None, ood: dict[str, Predictions] | None = None
) -> dict:
    """Figures for predictions ``preds`` of labelled inputs ``y`` (N,), optionally with the run's
    fitted ``caveats`` and named out-of-scope predictions ``ood``."""
    raw = preds.probs[0]
    out = selective(raw, y, 1.0 - raw.max(-1))
    if caveats is None:
        if ood:
            out["ood"] = {
                name: _ood({"least_confidence": 1.0 - raw.max(-1)}, {"least_confidence": 1.0 - p.probs[0].max(-1)})
                for name, p in ood.items()
            }
        return out
    probs, scores, decision = caveats.decide(preds)
    errors = probs.argmax(-1) != y
    answered = decision.answered
    out["calibrated"] = {"temperature": caveats.temperature, **selective(probs, y, scores[caveats.score])}
    out["conformal"] = {
        "coverage": float(decision.prediction_set[np.arange(len(y)), y].mean()),
        "set_size": float(decision.prediction_set.sum(-1).mean()),
    }
    # the guarantee covers what the whole policy answers: the risk threshold was chosen on what the
    # OOD and prediction-set checks let through (calibrate.py)
    out["abstention"] = {
        "score": caveats.score,
        "risk": cm.selective_risk(errors, answered) if answered.any() else None,
        "coverage": float(answered.mean()),
        "guarantee": caveats.risk.guarantee,
    }
    out["decisions"] = {"in_scope": decision.counts()}
    if ood:
        out["ood"] = {}
        for name, p in ood.items():
            _, ood_scores, ood_decision = caveats.decide(p)
            out["ood"][name] = _ood(scores, ood_scores)
            # every answered out-of-scope input is an error
            n_ans = int(answered.sum() + ood_decision.answered.sum())
            wrong = int((errors & answered).sum() + ood_decision.answered.sum())
            out["decisions"][name] = {
                **ood_decision.counts(),
                "oos_recall": float(1 - ood_decision.answered.mean()),
                "in_scope_accuracy": float(1 - errors.mean()),
                "in_scope_answered_accuracy": float(1 - errors[answered].mean()) if answered.any() else None,
                "combined_answered_error": wrong / n_ans if n_ans else None,
                "combined_coverage": n_ans / (len(y) + len(ood_decision)),
            }
    return out


def _ood(scores_in: dict[str, np.ndarray], scores_out: dict[str, np.ndarray]) -> dict:
    return {
        k: {"auroc": cm.ood_auroc(scores_in[k], scores_out[k]), "fpr95": cm.fpr_at_95_tpr(scores_in[k], scores_out[k])}
        for k in scores_in
    }


def sampled_metrics(preds: Predictions, y: np.ndarray, ood: dict[str, Predictions] | None = None) -> dict:
    """Figures of M stochastic samples (MC dropout): the mean probabilities' calibration and selective
    figures, and OOD detection by entropy of the mean, mutual information and variance."""

    mean = preds.probs.mean(0)  # (N, C)

    def scores(p: Predictions) -> dict[str, np.ndarray]:
        names = ("least_confidence", "entropy", "mutual_information", "variance")
        return {k: SCORES.get(k)(probs=p.probs) for k in names}

    inside = scores(preds)
    out = {"samples": int(preds.probs.shape[0]), **selective(mean, y, inside["least_confidence"])}
    if ood:
        out["ood"] = {name: _ood(inside, scores(p)) for name, p in ood.items()}
    return out
