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


def pooled_logits(member_logits: np.ndarray) -> np.ndarray:
    """The log of an ensemble's mean probability, ``(M, N, C)`` member logits -> ``(N, C)``, computed in log space
    (a member's probability that underflows to 0 never makes the pool -inf). Temperature scaling these pooled
    log-probabilities calibrates the ensemble as a whole ("pool then calibrate": Rahaman & Thiery 2021,
    "Uncertainty quantification and deep ensembles", NeurIPS)."""
    z = np.asarray(member_logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"member logits must have shape (M, N, C); got {z.shape}")
    return logsumexp(log_softmax(z, axis=-1), axis=0) - np.log(len(z))
