"""Temperature scaling as the calibrations apply it: the one place a fitted temperature touches logits."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp, softmax

from caveat.types import Predictions


class TemperatureScaled:
    """``scale`` and ``apply`` for a calibration with a fitted ``temperature`` (Guo et al. 2017)."""

    temperature: float

    def scale(self, logits):
        """Temperature-scaled logits; numpy arrays and torch tensors alike (explainers differentiate it)."""
        return logits / self.temperature

    def apply(self, preds: Predictions) -> Predictions:
        """``preds`` with temperature-scaled logits and their probabilities; shapes unchanged ((M, N, C) or
        (M, N, T, C))."""
        logits = self.scale(preds.logits)
        return Predictions(
            probs=softmax(logits, axis=-1), logits=logits, features=preds.features, mask=preds.mask, labels=preds.labels
        )


POOLINGS = ("probability", "logit")  # how an ensemble's members are pooled; calibration keeps the better by NLL


def pooled_logits(member_logits: np.ndarray, pooling: str = "probability") -> np.ndarray:
    """An ensemble's pooled log-probabilities, ``(M, N, C)`` member logits -> ``(N, C)``.

    ``probability``: the log of the members' mean probability, computed in log space (a member's probability that
    underflows to 0 never makes the pool -inf). ``logit``: the mean of the members' log-probabilities (their
    normalised geometric mean, log-linear pooling), which stays sharper where members agree on the top class but
    split their doubt over different runners-up, where the mean probability is under-confident. Temperature
    scaling the pool calibrates the ensemble as a whole ("pool then calibrate": Rahaman & Thiery 2021,
    "Uncertainty quantification and deep ensembles", NeurIPS)."""
    z = np.asarray(member_logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"member logits must have shape (M, N, C); got {z.shape}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
    logp = log_softmax(z, axis=-1)
    if pooling == "logit":
        return log_softmax(logp.mean(axis=0), axis=-1)
    return logsumexp(logp, axis=0) - np.log(len(z))
