"""Temperature scaling as the calibrations apply it: the one place a fitted temperature touches logits."""

from __future__ import annotations

from scipy.special import softmax

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
