"""What every attack shares: the model under attack (``Victim``), the constraints, and the result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.errors import ConfigError


class Predicts(Protocol):
    """Anything with class names and a batched ``predict`` returning ``Predictions`` (a ``Predictor``)."""

    labels: list[str]

    def predict(self, inputs: Sequence[str]): ...


class Victim:
    """The model under attack, seen only through its probabilities (black box).

    Wraps a ``Predictor`` (the one batched inference engine) and counts every text it scores, so
    query counts are exact whatever the batching. ``queries`` only grows; read it before and after.
    """

    def __init__(self, predictor: Predicts) -> None:
        self.predictor = predictor
        self.labels = list(predictor.labels)
        self.queries = 0

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of ``texts``: (N, C). Counts N queries."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        preds = self.predictor.predict(list(texts))
        self.queries += len(texts)
        return preds.mean_probs  # (N, C); M = 1 for a deterministic model


class Encoder(Protocol):
    """A sentence encoder: texts -> L2-normalised embeddings (N, D), so that a dot product is a cosine."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class WordLM(Protocol):
    """A language model that proposes words in context: the ``lm`` candidate source of BAE (``bae.py``).

    ``next_words(prefixes, k)``: for each left context, up to ``k`` lower-case whole words (letters only) that may
    come next, most probable first. ``log_likelihood(texts)``: (N,) log-likelihood of each whole text. Each call is
    one batched request; a caller counts them.
    """

    def next_words(self, prefixes: Sequence[str], k: int) -> list[list[str]]: ...

    def log_likelihood(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Constraints:
    """What makes an adversarial example valid (Morris et al. 2020, "Reevaluating Adversarial Examples
    in Natural Language"): a change budget, a minimum sentence similarity, and words never edited.

    Parameters
    ----------
    max_change : largest fraction of the words that may change, in (0, 1]; the budget of a text of
        n words is ``floor(max_change * n)`` (a 4-word text under 0.2 cannot be attacked).
    min_similarity : smallest cosine similarity, in [0, 1], between the sentence embeddings of the
        adversarial and the original text.
    protected : words (any case) never edited, on top of ``stop_words``, and never proposed as substitutes.
    stop_words : never edited (scikit-learn's English list by default).
    """

    max_change: float = 0.2
    min_similarity: float = 0.8
    protected: frozenset[str] = frozenset()
    stop_words: frozenset[str] = field(default=ENGLISH_STOP_WORDS, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_change, bool) or not 0 < self.max_change <= 1:
            raise ConfigError(
                f"max_change must be in (0, 1] (the largest fraction of words changed). Got {self.max_change!r}."
            )
        if isinstance(self.min_similarity, bool) or not 0 <= self.min_similarity <= 1:
            raise ConfigError(f"min_similarity must be in [0, 1] (a cosine similarity). Got {self.min_similarity!r}.")
        object.__setattr__(self, "protected", frozenset(w.lower() for w in self.protected))

    def budget(self, n_words: int) -> int:
        """How many words of an ``n_words`` text may change."""
        return math.floor(self.max_change * n_words + 1e-9)

    def editable(self, core: str | None) -> bool:
        """May a word with this core be edited? Not stop words, protected words or single letters."""
        return (
            core is not None
            and len(core) > 1
            and core.lower() not in self.stop_words
            and core.lower() not in self.protected
        )

    def as_dict(self) -> dict:
        return {
            "max_change": self.max_change,
            "min_similarity": self.min_similarity,
            "protected": sorted(self.protected),
        }


@dataclass
class AttackResult:
    """One example after an attack.

    ``attacked`` is False when the model got the example wrong to begin with (it is then left alone);
    ``success`` means the adversarial text is predicted a label other than the true one. ``queries``
    counts every text the victim scored for this example, the original included. Labels are class
    names; ``*_prob`` is the probability of the label predicted for that text.
    """

    original: str
    adversarial: str
    label: str
    original_label: str
    original_prob: float
    adversarial_label: str
    adversarial_prob: float
    attacked: bool
    success: bool
    queries: int
    words: int
    changed: int
    similarity: float

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.words if self.words else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "changed_fraction": self.changed_fraction}
