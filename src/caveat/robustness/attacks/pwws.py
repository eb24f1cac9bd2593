"""PWWS: probability weighted word saliency (Ren et al. 2019, "Generating Natural Language Adversarial Examples
through Probability Weighted Word Saliency", ACL).

For a text ``x`` of true label ``y`` and each editable word ``w_i`` (``p(.)`` is the victim's probability of ``y``):

1. the best swap ``w_i*``: of the word's substitutes (the lexicon's synonyms by default) that keep the sentence
   similarity floor, the one that most lowers ``p``; ``Δp_i* = p(x) − p(x with w_i → w_i*)``;
2. the word saliency ``S_i = p(x) − p(x with w_i → unknown token)``;
3. the score ``H_i = softmax(S)_i · Δp_i*``;
4. the words are swapped for their ``w_i*`` in decreasing ``H`` (ties: text order), one after another on the
   text so far, until the label flips or the change budget is spent.

Steps 1 and 2 are one batched query of ``P + ΣK_i`` texts (``P`` words with a substitute that keeps the
similarity floor, ``K_i`` such substitutes each); step 4 one query per swap after the first (the first swap's
text was scored in step 1). As the other attacks here, it obeys ``Constraints``: the budget, the similarity
floor (checked for every single swap in step 1 and for the text so far in step 4, where a swap that would
take it below the floor is passed over), stop and protected words. Two departures from the paper, both to
spend the budget well: the saliency and softmax are over the words that have a substitute (the softmax's
denominator is shared, so the order is the paper's), and a word whose best swap does not lower ``p`` on the
original text (``Δp_i* ≤ 0``) is never swapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from caveat.robustness.attacks.base import AttackResult, Victim
from caveat.robustness.attacks.search import Attack, _Search
from caveat.robustness.attacks.words import Words


def weighted_saliency(p: float, p_unknown: np.ndarray, p_best: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PWWS's scores from the true label's probabilities.

    Parameters
    ----------
    p : on the original text.
    p_unknown : (P,) with each word replaced by the unknown token.
    p_best : (P,) with each word replaced by its best swap.

    Returns
    -------
    saliency ``S = p − p_unknown`` (P,), ``Δp* = p − p_best`` (P,) and the score ``softmax(S) · Δp*`` (P,).
    """
    saliency = p - np.asarray(p_unknown, dtype=np.float64)  # (P,)
    delta = p - np.asarray(p_best, dtype=np.float64)  # (P,)
    if not len(saliency):
        return saliency, delta, delta.copy()
    weights = np.exp(saliency - saliency.max())  # softmax, shifted for stability
    return saliency, delta, weights / weights.sum() * delta


class Ranked(NamedTuple):
    """One word of a PWWS ranking: its token index, letters, best swap and the scores that placed it."""

    position: int
    word: str
    substitute: str
    saliency: float
    delta: float
    score: float
    similarity: float  # of the text with this single swap to the original


@dataclass
class PWWS(Attack):
    """PWWS over the substitutes ``candidates`` (``unknown``: the text saliency replaces a word by)."""

    unknown: str = "[UNK]"
    tags_sentences = False  # its ranking is over one label's probability: text classification only

    def search(self, victim: Victim, words: Words, y: int, probs: np.ndarray) -> _PWWSSearch:
        return _PWWSSearch(self, victim, words, y, probs)

    def rank(self, victim: Victim, text: str, label: str) -> list[Ranked]:
        """The words of ``text`` in the order PWWS swaps them (the words it would never swap left out), with
        their scores. Queries ``victim`` as an attack does (the original, then the one batched query)."""
        y = victim.labels.index(label)
        search = _PWWSSearch(self, victim, Words.of(text), y, victim.probs([text])[0])
        return search.rank()[0]


class _PWWSSearch(_Search):
    """The state of one PWWS search (one example)."""

    def rank(self) -> tuple[list[Ranked], dict[int, np.ndarray]]:
        """The ranked words (``Δp* > 0`` only), and each one's single-swap probabilities (C,) by position."""
        attack, words, y = self.attack, self.words, self.y
        swaps = [(i, c) for i in attack.positions(words) for c in attack.options(words.core(i))]
        if not swaps:
            return [], {}
        texts = [words.replace(i, c).text for i, c in swaps]
        embedded = attack.encoder.encode([words.text, *texts])  # (1 + S, D)
        self.reference = embedded[0]
        sims = embedded[1:] @ self.reference  # (S,)
        kept = [j for j in range(len(swaps)) if sims[j] >= attack.constraints.min_similarity]
        positions = list(dict.fromkeys(swaps[j][0] for j in kept))
        if not positions:
            return [], {}
        unknown = [words.replace(i, attack.unknown).text for i in positions]
        scored = self.victim.probs(unknown + [texts[j] for j in kept])  # (P + K, C), one batched query
        p_unknown, p_swap = scored[: len(positions), y], scored[len(positions) :, y]  # (P,), (K,)
        best: dict[int, int] = {}  # position -> index into kept of its lowest-probability swap (first on ties)
        for k, j in enumerate(kept):
            i = swaps[j][0]
            if i not in best or p_swap[k] < p_swap[best[i]]:
                best[i] = k
        p_best = np.array([p_swap[best[i]] for i in positions])  # (P,)
        saliency, delta, score = weighted_saliency(float(self.original_probs[y]), p_unknown, p_best)
        order = np.argsort(-score, kind="stable")  # highest score first, text order on ties
        ranked = [
            Ranked(
                position=positions[r],
                word=words.core(positions[r]),
                substitute=swaps[kept[best[positions[r]]]][1],
                saliency=float(saliency[r]),
                delta=float(delta[r]),
                score=float(score[r]),
                similarity=float(sims[kept[best[positions[r]]]]),
            )
            for r in order
            if delta[r] > 0
        ]
        single = {i: scored[len(positions) + best[i]] for i in positions}
        return ranked, single

    def run(self) -> AttackResult:
        words, y, constraints = self.words, self.y, self.attack.constraints
        if int(np.argmax(self.original_probs)) != y:
            return self.result(words, self.original_probs, 0, 1.0, attacked=False)
        budget = constraints.budget(words.n_words)
        current, probs, changed, similarity = words, self.original_probs, 0, 1.0
        if budget == 0 or not self.attack.positions(words):
            return self.result(current, probs, changed, similarity, attacked=True)
        ranked, single = self.rank()
        for word in ranked:
            if changed >= budget:
                break
            candidate = current.replace(word.position, word.substitute)
            if changed == 0:  # the single swap on the original: scored and measured in rank()
                scored, sim = single[word.position], word.similarity
            else:
                sim = float(self.attack.encoder.encode([candidate.text])[0] @ self.reference)
                if sim < constraints.min_similarity:
                    continue
                scored = self.victim.probs([candidate.text])[0]
            current, probs, changed, similarity = candidate, scored, changed + 1, sim
            if int(np.argmax(probs)) != y:
                break
        return self.result(current, probs, changed, similarity, attacked=True)
