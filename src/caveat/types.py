"""The data contracts shared by every stage. Shapes are documented here once.

Letters used in shapes: ``M`` stochastic samples (1 when deterministic), ``N`` inputs,
``C`` classes, ``T`` positions, ``D`` feature size. In ``Predictions`` of token tasks, ``T`` indexes
*words* (each word's first sub-token), not sub-words: spans, metrics and users all think in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Task(str, Enum):
    """What a run predicts. Relation classification labels a text whose two entities are marked
    ``<e1>…</e1>`` and ``<e2>…</e2>`` (the SemEval-2010 Task 8 form); everything after the model
    treats it as text classification (one label per text)."""

    TEXT_CLASSIFICATION = "text-classification"
    TOKEN_CLASSIFICATION = "token-classification"
    RELATION_CLASSIFICATION = "relation-classification"

    @property
    def classifies_texts(self) -> bool:
        """True when the task gives one label per text (text and relation classification): predictions
        are ``(M, N, C)`` and calibration, conformal sets, abstention and OOD scores apply as they are."""
        return self is not Task.TOKEN_CLASSIFICATION


@dataclass(frozen=True)
class TextExample:
    """One text with its label (``None`` when unlabelled). ``line`` is 1-based, for messages."""

    text: str
    label: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class TokenExample:
    """One pre-split sentence with one BIO2 tag per token (``None`` when unlabelled)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    line: int | None = None


Example = TextExample | TokenExample


@dataclass
class Split:
    """One named split: its examples, where they came from, and how many lines were skipped."""

    name: str
    examples: list
    source: str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Predictions:
    """Model outputs as arrays; everything after the model works on these, not on models.

    Attributes
    ----------
    probs : (M, N, C) for sequences, (M, N, T, C) for tokens.
    logits : same shape as ``probs``, or None.
    features : (N, D) penultimate features (sequences only), or None.
    mask : (N, T) bool, True for real words (tokens only; False for padding and for words cut off
        by ``max_length``), or None.
    """

    probs: np.ndarray
    logits: np.ndarray | None = None
    features: np.ndarray | None = None
    mask: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)

    @property
    def mean_probs(self) -> np.ndarray:
        """(N, C) or (N, T, C): the average over the M samples."""
        return self.probs.mean(axis=0)
