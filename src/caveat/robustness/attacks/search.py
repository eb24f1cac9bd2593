"""Greedy substitution search under constraints: the engine behind every registered attack.

``order="importance"`` is the word-importance ranking of TextFooler (Jin et al. 2020, "Is BERT Really
Robust? A Strong Baseline for Natural Language Attack on Text Classification and Entailment"): each
editable word is deleted in turn (one batched query) and words are visited by how much their deletion
lowers the true label's probability. ``order="random"`` visits them in a seeded random order, the
baseline search of Yoo et al. 2020 ("Searching for a Search Method"). At each visited word every
candidate is scored in one batched query after the similarity filter; a candidate that flips the
label ends the search (the most similar such one is kept), otherwise the one lowering the true
label's probability most is kept if it lowers it at all. The search stops at the first flip, or when
the change budget is spent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from caveat.errors import ConfigError
from caveat.robustness.attacks.base import AttackResult, Constraints, Encoder, Victim
from caveat.robustness.attacks.lexicon import AntonymFilter
from caveat.robustness.attacks.words import Words

ORDERS = ("importance", "random")


@dataclass
class Attack:
    """A named attack: where substitutes come from, the order words are visited in, and the constraints.

    Parameters
    ----------
    name : its registry name.
    candidates : a word's letters -> replacement spellings or words, in the word's case.
    constraints : budget, similarity floor, words never edited.
    encoder : sentence encoder for the similarity constraint.
    order : ``"importance"`` or ``"random"``.
    seed : for the random order (candidate generators take their own seed).
    sources : names of the candidate sources ``candidates`` draws from (``"char"`` for character edits), reported
        with the attack's figures.
    antonyms : the filter ``candidates`` passes its substitutes through (its counts are reported); None when the
        candidates were built without one.
    """

    name: str
    candidates: Callable[[str], list[str]]
    constraints: Constraints
    encoder: Encoder
    order: str = "importance"
    seed: int = 0
    sources: tuple[str, ...] = ()
    antonyms: AntonymFilter | None = None
    tags_sentences: ClassVar[bool] = True  # can it attack NER sentences (robustness/ner.py)?

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(ORDERS)}. Got {self.order!r}.")

    def report(self) -> dict:
        """What the attack's figures carry about its candidates: ``sources`` and the antonym filter's report
        (``AntonymFilter.report``: on or off and why, and what it withheld so far)."""
        return {"sources": list(self.sources), **(self.antonyms or AntonymFilter(None)).report()}

    def attack(self, victim: Victim, text: str, label: str, *, probs: np.ndarray | None = None) -> AttackResult:
        """Attack one labelled text.

        ``probs`` (C,) are the victim's probabilities for ``text`` when the caller already scored it
        (in a batch with other texts); that query is still counted in the result. Examples the victim
        gets wrong are returned unattacked.
        """
        scored_by_caller = probs is not None
        start = victim.queries
        if probs is None:
            probs = victim.probs([text])[0]
        result = self.search(victim, Words.of(text), victim.labels.index(label), probs).run()
        result.queries = victim.queries - start + int(scored_by_caller)
        return result

    def search(self, victim: Victim, words: Words, y: int, probs: np.ndarray) -> _Search:
        """The search state of one example (the true label's index ``y``, its clean probabilities ``probs``)."""
        return _Search(self, victim, words, y, probs)

    def positions(self, words: Words) -> list[int]:
        """Tokens this attack may edit."""
        return [i for i in range(len(words.tokens)) if self.constraints.editable(words.core(i))]

    def options(self, core: str) -> list[str]:
        """The candidates for ``core`` that may replace it: one word, not ``core`` itself, never a
        protected word (protected words are never introduced either); in the source's order."""
        return self.allowed(core, self.candidates(core))

    def allowed(self, core: str, candidates: list[str]) -> list[str]:
        """``candidates`` without repeats, blanks, ``core`` itself, protected words and anything holding a space."""
        return [
            c
            for c in dict.fromkeys(candidates)
            if c and c != core and c.lower() not in self.constraints.protected and not any(ch.isspace() for ch in c)
        ]

    def choices(self, original: Words, current: Words, i: int) -> list[str]:
        """The candidates that may replace token ``i`` of ``current`` (``original`` before any swap): ``options``
        of the original word. An attack that proposes words in context (``bae.py``) reads ``current`` too."""
        return self.options(original.core(i))

    def perturb(self, text: str, rng: random.Random) -> tuple[str, int, float]:
        """A random edit of ``text`` inside the constraints, made without consulting any model.

        Editable words are visited in a random order and each is replaced by a random one of its
        candidates until the change budget is spent; then the longest run of those substitutions whose
        sentence similarity to ``text`` keeps the floor is kept. Training on such edits is the
        data-augmentation baseline of Jia et al. 2019 ("Certified Robustness to Adversarial Word
        Substitutions"); random substitution from the attack's own candidate set is also how SAFER
        (Ye et al. 2020) smooths a classifier.

        Returns the edited text, the number of words changed (0: no valid edit, ``text`` returned) and
        its similarity to ``text``.
        """
        return self.perturb_all([text], [rng])[0]

    def perturb_all(self, texts: list[str], rngs: list[random.Random]) -> list[tuple[str, int, float]]:
        """``perturb`` for many texts (one generator each), with one batched sentence-encoder call."""
        drafts = [self._draft(Words.of(text), rng) for text, rng in zip(texts, rngs, strict=True)]
        flat = [t for text, steps in zip(texts, drafts) if steps for t in (text, *(s.text for s in steps))]
        embedded = self.encoder.encode(flat) if flat else None  # (sum of 1 + J, D)
        out, at = [], 0
        for text, steps in zip(texts, drafts):
            if not steps:
                out.append((text, 0, 1.0))
                continue
            sims = embedded[at + 1 : at + 1 + len(steps)] @ embedded[at]  # (J,)
            at += 1 + len(steps)
            kept = np.nonzero(sims >= self.constraints.min_similarity)[0]
            j = int(kept[-1]) if len(kept) else -1
            out.append((steps[j].text, j + 1, float(sims[j])) if j >= 0 else (text, 0, 1.0))
        return out

    def _draft(self, words: Words, rng: random.Random) -> list[Words]:
        """The random substitutions of ``perturb``, before the similarity check: ``[j]`` holds j + 1 of them."""
        budget = self.constraints.budget(words.n_words)
        positions = self.positions(words)
        rng.shuffle(positions)
        current, steps = words, []
        for i in positions:
            if len(steps) >= budget:
                break
            options = self.choices(words, current, i)
            if options:
                current = current.replace(i, rng.choice(options))
                steps.append(current)
        return steps

    def substitutes(
        self, original: Words, current: Words, i: int, reference: np.ndarray | None
    ) -> tuple[list[Words], np.ndarray, np.ndarray | None]:
        """``current`` with token ``i`` replaced by each candidate for its core in ``original`` that keeps
        the constraints: one word for one word, never a protected word, and a sentence embedding at least
        ``min_similarity`` from ``original``'s. Returns the kept texts, their similarities (K,) and the
        original's embedding (pass it back in: it is encoded once per search)."""
        texts = [current.replace(i, c) for c in self.choices(original, current, i)]
        if not texts:
            return [], np.zeros(0), reference
        if reference is None:
            reference = self.encoder.encode([original.text])[0]  # (D,)
        sims = self.encoder.encode([t.text for t in texts]) @ reference  # (K,)
        keep = np.nonzero(sims >= self.constraints.min_similarity)[0]
        return [texts[j] for j in keep], sims[keep], reference


class _Search:
    """The state of one greedy search (one example)."""

    def __init__(self, attack: Attack, victim: Victim, words: Words, y: int, probs: np.ndarray) -> None:
        self.attack, self.victim, self.words, self.y = attack, victim, words, y
        self.original_probs = probs

    def result(
        self, current: Words, probs: np.ndarray, changed: int, similarity: float, attacked: bool
    ) -> AttackResult:
        labels, y = self.victim.labels, self.y
        before, after = int(np.argmax(self.original_probs)), int(np.argmax(probs))
        return AttackResult(
            original=self.words.text,
            adversarial=current.text,
            label=labels[y],
            original_label=labels[before],
            original_prob=float(self.original_probs[before]),
            adversarial_label=labels[after],
            adversarial_prob=float(probs[after]),
            attacked=attacked,
            success=attacked and after != y,
            queries=0,
            words=self.words.n_words,
            changed=changed,
            similarity=float(similarity),
        )

    def order(self, positions: list[int]) -> list[int]:
        if self.attack.order == "random":
            rng = random.Random(f"{self.attack.seed}:{self.words.text}")
            return rng.sample(positions, len(positions))
        dropped = self.victim.probs([self.words.without(i) for i in positions])[:, self.y]  # (P,)
        return [positions[j] for j in np.argsort(dropped, kind="stable")]  # lowest true-label prob first

    def run(self) -> AttackResult:
        words, y = self.words, self.y
        if int(np.argmax(self.original_probs)) != y:
            return self.result(words, self.original_probs, 0, 1.0, attacked=False)
        budget = self.attack.constraints.budget(words.n_words)
        positions = self.attack.positions(words)
        current, probs, changed, similarity = words, self.original_probs, 0, 1.0
        if budget == 0 or not positions:
            return self.result(current, probs, changed, similarity, attacked=True)
        reference = None
        for i in self.order(positions):
            if changed >= budget:
                break
            texts, sims, reference = self.attack.substitutes(words, current, i, reference)
            if not texts:
                continue
            scored = self.victim.probs([t.text for t in texts])  # (K, C)
            flipped = np.nonzero(np.argmax(scored, axis=1) != y)[0]
            if len(flipped):
                best = flipped[np.argmax(sims[flipped])]  # the most similar flip (TextFooler)
                return self.result(texts[best], scored[best], changed + 1, sims[best], attacked=True)
            best = int(np.argmin(scored[:, y]))
            if scored[best, y] < probs[y]:
                current, probs, changed, similarity = texts[best], scored[best], changed + 1, sims[best]
        return self.result(current, probs, changed, similarity, attacked=True)
