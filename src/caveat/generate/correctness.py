"""Is a generated answer right? Pluggable rules comparing it with the reference answers.

Every rule normalises both sides as the official SQuAD v1.1 evaluation script does
(:func:`normalize_answer`). Choose a rule by name with :func:`get_rule`: ``"exact"``,
``"contains"``, ``"f1"`` or ``"f1@<threshold>"``.

One departure from the official script: a reference that normalises to nothing (e.g. ``"The"``)
is ignored, and an answer that normalises to nothing is wrong, so an empty generation is never
judged right (the script would score ``""`` against ``"The"`` as an exact match).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.generate.data import Question
from caveat.registry import Registry

RULES: Registry[type] = Registry("correctness rule")

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """SQuAD v1.1 answer normalisation: lower-case, drop punctuation, drop articles, collapse spaces.

    Rajpurkar, Zhang, Lopyrev & Liang (2016), "SQuAD: 100,000+ Questions for Machine Comprehension
    of Text", EMNLP; the steps and their order follow the official ``evaluate-v1.1.py``.
    Punctuation is ``string.punctuation`` (ASCII) only, as there: typographic quotes and dashes stay.

    Examples
    --------
    >>> normalize_answer("The  Charles Darwin.")
    'charles darwin'
    """
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(answer: str, reference: str) -> float:
    """SQuAD token F1 of ``answer`` against one ``reference`` (both normalised), in [0, 1].

    Harmonic mean of token precision and recall with multiset overlap (Rajpurkar et al. 2016).
    0.0 when either side normalises to no tokens.
    """
    pred, ref = normalize_answer(answer).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _normalized_refs(references: Sequence[str]) -> list[str]:
    if isinstance(references, str):
        raise DataError(
            f"references must be a sequence of strings, not one string ({references!r}); wrap it: [reference]"
        )
    return [r for r in map(normalize_answer, references) if r]


@RULES.register("exact")
@dataclass(frozen=True)
class ExactMatch:
    """Right when the normalised answer equals some normalised reference (SQuAD EM)."""

    name = "exact"

    def describe(self) -> str:
        return "exact match with some reference after SQuAD normalisation"

    def __call__(self, answer: str, references: Sequence[str]) -> bool:
        a = normalize_answer(answer)
        return bool(a) and a in _normalized_refs(references)


@RULES.register("contains")
@dataclass(frozen=True)
class Contains:
    """Right when some normalised reference occurs in the normalised answer as whole words.

    "Paris, France" contains "Paris"; "party" does not contain "art". Lenient for the verbose
    answers of chat models, but a long answer that lists many candidates games it: score answer
    length alongside (or prefer ``exact`` / ``f1``) when answers run long.
    """

    name = "contains"

    def describe(self) -> str:
        return "some reference occurs in the answer as whole words (SQuAD normalisation)"

    def __call__(self, answer: str, references: Sequence[str]) -> bool:
        padded = f" {normalize_answer(answer)} "  # normalised text is single-space separated
        return any(f" {r} " in padded for r in _normalized_refs(references))


@RULES.register("f1")
@dataclass(frozen=True)
class TokenF1:
    """Right when the token F1 against the best reference reaches ``threshold`` (default 0.5)."""

    threshold: float = 0.5

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
            raise ConfigError(f"f1 threshold must lie in (0, 1]; got {t!r}. E.g. 'f1@0.5'")

    @property
    def name(self) -> str:
        return f"f1@{self.threshold:g}"

    def describe(self) -> str:
        return f"token F1 >= {self.threshold:g} against the best reference (SQuAD normalisation)"

    def __call__(self, answer: str, references: Sequence[str]) -> bool:
        # normalize_answer is idempotent, so token_f1 may take the normalised references
        refs = _normalized_refs(references)
        return max((token_f1(answer, r) for r in refs), default=0.0) >= self.threshold


def get_rule(spec: str):
    """The rule named by ``spec``: ``"exact"``, ``"contains"``, ``"f1"`` or ``"f1@<t>"``, t in (0, 1].

    ``get_rule(rule.name)`` gives an equal rule back.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a correctness rule is named by a string such as 'f1@0.5'; got {spec!r}")
    name, sep, arg = spec.strip().partition("@")
    cls = RULES.get(name)
    if not sep:
        return cls()
    if cls is not TokenF1:
        raise ConfigError(f"rule {name!r} takes no threshold; got {spec!r}. Use {name!r}")
    try:
        threshold = float(arg)
    except ValueError:
        raise ConfigError(f"cannot read the threshold in {spec!r}; write e.g. 'f1@0.3'") from None
    if math.isnan(threshold):
        raise ConfigError(f"f1 threshold must lie in (0, 1]; got {spec!r}. E.g. 'f1@0.5'")
    return TokenF1(threshold)


def judge(answers: Sequence[str], questions: Sequence[Question], rule) -> np.ndarray:
    """Which answers are right under ``rule``.

    Parameters
    ----------
    answers : (N,) str, the generated answers, in the order of ``questions``.
    questions : (N,) Question; their ``answers`` are the references.
    rule : a rule object (``name``, ``describe()``, ``__call__``) or a spec for :func:`get_rule`.

    Returns
    -------
    correct : (N,) bool.
    """
    if isinstance(rule, str):
        rule = get_rule(rule)
    if len(answers) != len(questions):
        raise DataError(
            f"got {len(answers)} answers for {len(questions)} questions; "
            "give one answer per question, in the same order"
        )
    for i, a in enumerate(answers):
        if not isinstance(a, str):
            raise DataError(
                f"answer {i} (question {questions[i].id!r}) is {type(a).__name__}, not str; use '' for a missing answer"
            )
    return np.fromiter((rule(a, q.answers) for a, q in zip(answers, questions)), dtype=bool, count=len(answers))
