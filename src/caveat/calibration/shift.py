"""Calibration for a target domain known only from unlabelled inputs (``caveat calibrate RUN --target FILE``).

``TargetShift`` holds the importance weights' estimator: a domain classifier (``decide/shift.py``) on the
model's log-probabilities at the source temperature, so it reads how confident the model is and about
which class, and weighs each input by how much more typical of the target that is. Fitting
(``fit_text.py``) uses the weights for the temperature (Park et al. 2020), the prediction sets
(Tibshirani et al. 2019) and the abstention threshold (a rejection sample, Park et al. 2022);
``Calibration`` (text.py) computes each served input's weight for its prediction set.

``choose_temperature`` keeps the temperature the target prefers by importance-weighted cross-validation
(Sugiyama, Krauledat & Müller 2007, "Covariate shift adaptation by importance weighted cross
validation", JMLR): the weighted NLL of held-out calibration folds estimates the target NLL, so the
weighted fit is kept only when it beats the plain one there, which it does not when a few heavy weights
make it noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from caveat.decide.shift import DensityRatio, effective_sample_size
from caveat.uncertainty.methods.temperature import TemperatureScaling

FOLDS = 5


@dataclass
class TargetShift:
    """Importance weights of inputs from their raw logits: a ``DensityRatio`` on ``log_softmax(logits / T)``."""

    ratio: DensityRatio
    temperature: float  # the source (unweighted) temperature the covariates are read at

    @classmethod
    def fit(cls, source_logits: np.ndarray, target_logits: np.ndarray, temperature: float, *, seed: int = 0):
        """Fit on the calibration split's logits ``(N, C)`` and the target inputs' ``(M, C)``."""
        ratio = DensityRatio(seed=seed).fit(
            log_softmax(source_logits / temperature, axis=-1), log_softmax(target_logits / temperature, axis=-1)
        )
        return cls(ratio, float(temperature))

    def weights(self, logits: np.ndarray) -> np.ndarray:
        """(N,) importance weights of inputs with raw logits ``(N, C)``."""
        return self.ratio.weights(log_softmax(np.asarray(logits, dtype=np.float64) / self.temperature, axis=-1))

    def state(self) -> dict:
        return {"ratio": self.ratio.state(), "covariate_temperature": self.temperature}

    @classmethod
    def from_state(cls, state: dict) -> TargetShift:
        return cls(DensityRatio.from_state(state["ratio"]), float(state["covariate_temperature"]))


def choose_temperature(
    logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, *, seed: int = 0
) -> tuple[TemperatureScaling, dict]:
    """The plain or the importance-weighted temperature, whichever has the lower weighted NLL on held-out
    folds of the calibration split (the target NLL's estimate); refitted on all of it.

    Returns the fitted ``TemperatureScaling`` and a report: each candidate's temperature (on all data)
    and cross-validated weighted NLL, the one kept, and the weights' effective sample size.
    """
    n = len(labels)
    folds = np.random.default_rng(seed).permutation(n) % FOLDS  # (N,) fold of each example
    held_out = {"temperature": 0.0, "weighted_temperature": 0.0}
    for k in range(FOLDS):
        fit, test = folds != k, folds == k
        if not weights[test].sum() > 0:
            continue
        for name, w in (("temperature", None), ("weighted_temperature", weights[fit])):
            ts = TemperatureScaling().fit(logits[fit], labels[fit], sample_weight=w)
            held_out[name] += _weighted_nll(ts, logits[test], labels[test], weights[test]) * weights[test].sum()
    plain = TemperatureScaling().fit(logits, labels)
    weighted = TemperatureScaling().fit(logits, labels, sample_weight=weights)
    kept = min(held_out, key=held_out.get)
    fitted = {"temperature": plain, "weighted_temperature": weighted}
    report = {
        "kept": kept,
        "candidates": {
            name: {"temperature": ts.temperature, "cv_weighted_nll": held_out[name] / weights.sum()}
            for name, ts in fitted.items()
        },
        "effective_sample_size": effective_sample_size(weights),
        "n": int(n),
    }
    return fitted[kept], report


def _weighted_nll(ts: TemperatureScaling, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    z = ts.transform(logits)
    lp = log_softmax(z, axis=-1)[np.arange(len(labels)), labels]
    return float(-np.average(lp, weights=weights))


def weight_warnings(ess: float, auroc: float | None) -> str:
    """Sentences for a target calibration's summary: weights too concentrated to trust, or a target the domain
    classifier cannot tell from the calibration data (then the weights change little, and a shift in how often
    the model is wrong at a given confidence stays invisible without target labels)."""
    words = ""
    if ess < 50:
        words += f" With an effective sample size of {ess:.0f} the figures are fragile: give more calibration data."
    if auroc is not None and auroc < 0.6:
        words += (
            f" The target looks like the calibration data to the domain classifier (AUROC {auroc:.2f}), so the "
            "weights are nearly equal and the result is close to the in-domain calibration. If the target is "
            "harder in ways the model's outputs do not show (e.g. new names), only labels can tell: label a sample "
            "of the target and calibrate on it."
        )
    return words


def weight_figures(ratio: DensityRatio, weights: np.ndarray, keep: np.ndarray) -> dict:
    """The figures every target calibration reports (``calibration.shift``): how well the domains separate, what the
    weighted calibration data is worth, the largest weight's share, and the rejection sample's size."""
    return {
        "domain_auroc": ratio.auroc,
        "effective_sample_size": effective_sample_size(weights),
        "weights_max_share": float(weights.max() / weights.sum()),
        "risk_sample": int(keep.sum()),
    }
