"""The one result type every explanation method returns, and the registry the methods live in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caveat.registry import Registry

EXPLAINERS: Registry = Registry("explanation method")
# how Attribution.summary words the two sides, by target kind (positive = raises the explained quantity)
SUMMARY_SIDES = {
    "uncertainty": ("most uncertainty from", "most certainty from"),
    "label": ("for it", "against it"),
    "span": ("for it", "against it"),
}


@dataclass
class Attribution:
    """Word-level attributions of one explained quantity on one input.

    Attributes
    ----------
    method : the registered name of the method that made it (``ig``, ``shap``, ``lime``, ``occlusion``, ``random``).
    words : W words of the input (whitespace words of a text, or the given words of an NER sentence).
    word_attributions : (W,) contribution of each word to the explained quantity; positive = raises it.
        Sub-word attributions are summed into their word. Words that are not features are 0.
    features : (W,) bool, the words that were explained. All words, except for a span target, where the
        span's own words are held fixed (always present) and only its context is explained.
    target : what was explained: ``kind`` (``label``, ``uncertainty`` or ``span``), ``name`` (a short
        description), and the label, the uncertainty score or the span, by kind.
    value : the explained quantity on the whole input, ``f(x)``.
    evaluations : inputs the model scored to make this explanation (a forward pass per interpolation
        point for integrated gradients, with its backward pass).
    seconds : wall time.
    details : what only this method has (IG: convergence delta, baseline value, sub-tokens; LIME: the
        local model's R^2; SHAP: the base value).
    """

    method: str
    words: list[str]
    word_attributions: np.ndarray
    features: np.ndarray
    target: dict
    value: float
    evaluations: int
    seconds: float
    details: dict = field(default_factory=dict)

    def ranking(self) -> np.ndarray:
        """Feature word indices, most positive attribution first (ties keep word order)."""
        idx = np.flatnonzero(self.features)
        return idx[np.argsort(-self.word_attributions[idx], kind="stable")]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` words that raise the explained quantity most, with their attributions."""
        return [(self.words[i], float(self.word_attributions[i])) for i in self.ranking()[:k]]

    def summary(self, k: int = 3) -> str:
        """One line for a person: the explained quantity, then the ``k`` words that raise it most and the
        ``k`` that lower it most, each strongest first, e.g. ``... most uncertainty from: 'beta' (+0.31);
        most certainty from: 'alpha' (-0.42)``. Words with a zero attribution are in neither list."""
        if k < 1:
            raise ValueError(f"k must be >= 1 words per side. Got {k}.")
        idx = np.flatnonzero(self.features)
        values = self.word_attributions[idx]
        raise_idx = idx[np.argsort(-values, kind="stable")]
        lower_idx = idx[np.argsort(values, kind="stable")]
        raises = [i for i in raise_idx if self.word_attributions[i] > 0][:k]
        lowers = [i for i in lower_idx if self.word_attributions[i] < 0][:k]
        up, down = SUMMARY_SIDES.get(self.target.get("kind"), ("raise it most", "lower it most"))

        def words(indices) -> str:
            return ", ".join(f"{self.words[i]!r} ({self.word_attributions[i]:+.3g})" for i in indices) or "none"

        value = f"{self.value:.3g}" if np.isfinite(self.value) else "n/a"
        name = self.target.get("name", self.target.get("kind", "f"))
        return f"{self.method}: {name} = {value}; {up}: {words(raises)}; {down}: {words(lowers)}"

    def to_dict(self) -> dict:
        """JSON-ready: every field, arrays as lists."""
        return {
            "method": self.method,
            "target": self.target,
            "value": self.value if np.isfinite(self.value) else None,
            "words": [
                {"word": w, "attribution": float(a), "feature": bool(f)}
                for w, a, f in zip(self.words, self.word_attributions, self.features)
            ],
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 4),
            "details": self.details,
        }
