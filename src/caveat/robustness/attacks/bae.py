"""BAE-R: substitutes proposed by a language model in context (Garg & Ramakrishnan 2020, "BAE: BERT-based
Adversarial Examples for Text Classification", EMNLP).

BAE masks a word and lets BERT's masked-LM head propose the top-K tokens for the mask, so a substitute fits the
words around it, where embedding neighbours and synonym lexicons look at the word alone. caveat's sentence
encoder (all-MiniLM-L6-v2) has no masked-LM head, so the ``lm`` source (a ``WordLM``, a causal LM: the packaged
SmolLM2-135M-Instruct for a run) stands in for it in two steps:

1. *propose*: the ``top_k`` most probable whole words to follow the word's left context (one batched call over
   every editable position of the text, again for a position whose left context an earlier swap changed); stop
   words, protected words, the word itself and its antonyms (``AntonymFilter``) are dropped;
2. *rerank*: each proposal is put in place and the whole text scored by its log-likelihood under the LM, so the
   right context counts too (one batched call per visited word); the ``max_candidates`` most likely are kept.

Words are visited in BAE's order: by how much deleting each lowers the true label's probability (one batched
query, the ``importance`` order of ``search.py``). At each visited word the candidates that keep the similarity
floor are scored at once; the search stops at the first flip (the most similar flip is kept) or when the change
budget is spent, as TextFooler's greedy search (Jin et al. 2020) does. BAE-R only: no insertions (BAE-I).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.robustness.attacks.base import Victim, WordLM
from caveat.robustness.attacks.search import Attack, _Search
from caveat.robustness.attacks.words import Words, match_case

CACHE_LIMIT = 4096  # proposals kept per example (a search resets them; NER's search does not, so they are bounded)


@dataclass
class BAE(Attack):
    """BAE-R over a ``WordLM``: words proposed for their left context, reranked by the whole text's likelihood.

    ``candidates`` is not given (None): a word alone gets the proposals for a one-word text (``options``); in a
    search every word gets them in its context (``choices``).

    Parameters
    ----------
    (``Attack``'s, and)
    lm : proposes next words and scores texts; every call is counted in ``lm_calls`` (and its texts in
        ``lm_texts``).
    top_k : words proposed per position before the filters (BAE's K).
    max_candidates : kept after the reranking.
    exclude : never proposed (stop words, as for the other sources).
    """

    lm: WordLM | None = None
    top_k: int = 20
    max_candidates: int = 20
    exclude: frozenset[str] = field(default=ENGLISH_STOP_WORDS, repr=False)
    lm_calls: int = field(default=0, init=False)
    lm_texts: int = field(default=0, init=False)
    _proposed: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.candidates = lambda core: self.in_context(Words.of(core), 0)

    def report(self) -> dict:
        """``Attack.report`` plus the language model's share: ``lm`` (its name, when it has one), ``lm_top_k``,
        ``lm_calls`` (batched calls so far) and ``lm_texts`` (prefixes and texts they held)."""
        return {
            **super().report(),
            "lm": getattr(self.lm, "name", None),
            "lm_top_k": self.top_k,
            "lm_calls": self.lm_calls,
            "lm_texts": self.lm_texts,
        }

    def rank(self, victim: Victim, text: str, label: str) -> list[int]:
        """The editable token positions of ``text`` in the order BAE visits them: by the true label's probability
        with the word deleted, lowest first (ties: text order). One batched query of the deletions."""
        words = Words.of(text)
        return _Search(self, victim, words, victim.labels.index(label), None).order(self.positions(words))

    def search(self, victim: Victim, words: Words, y: int, probs: np.ndarray) -> _BAESearch:
        self._proposed.clear()
        return _BAESearch(self, victim, words, y, probs)

    def choices(self, original: Words, current: Words, i: int) -> list[str]:
        core = original.core(i)
        return self.allowed(core, self.in_context(current, i, core))

    def next_words(self, prefixes: Sequence[str]) -> list[list[str]]:
        """The LM's ``top_k`` next words for each left context; the ones not proposed yet in one batched call."""
        missing = list(dict.fromkeys(p for p in prefixes if p not in self._proposed))
        if missing:
            if len(self._proposed) > CACHE_LIMIT:
                self._proposed.clear()
            self.lm_calls, self.lm_texts = self.lm_calls + 1, self.lm_texts + len(missing)
            self._proposed.update(zip(missing, self.lm.next_words(missing, self.top_k), strict=True))
        return [self._proposed[p] for p in prefixes]

    def log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) the LM's log-likelihood of each text: one batched call."""
        self.lm_calls, self.lm_texts = self.lm_calls + 1, self.lm_texts + len(texts)
        return np.asarray(self.lm.log_likelihood(list(texts)), dtype=np.float64)

    def proposals(self, words: Words, i: int, core: str | None = None) -> list[str]:
        """Step 1: the LM's next words for the left context of token ``i`` (lower-case, best first), without stop
        words, protected words, single letters, ``core`` (default: the token's letters) and its antonyms."""
        core = core or words.core(i)
        proposed = [
            w.lower()
            for w in self.next_words([words.before(i)])[0]
            if w.isalpha()
            and w.isascii()
            and len(w) > 1
            and w.lower() not in self.exclude
            and w.lower() not in self.constraints.protected
            and w.lower() != core.lower()
        ]
        proposed = list(dict.fromkeys(proposed))
        return self.antonyms(core, proposed) if self.antonyms is not None else proposed

    def rerank(self, words: Words, i: int, proposals: list[str], core: str | None = None) -> list[str]:
        """Step 2: ``proposals`` in the case of ``core`` ordered by the log-likelihood of ``words`` with each in place
        of token ``i`` (highest first; ties keep the proposal order), the first ``max_candidates``."""
        core = core or words.core(i)
        spelled = [match_case(core, w) for w in proposals]
        if not spelled:
            return []
        ll = self.log_likelihood([words.replace(i, w).text for w in spelled])  # (K,)
        return [spelled[j] for j in np.argsort(-ll, kind="stable")[: self.max_candidates]]

    def in_context(self, words: Words, i: int, core: str | None = None) -> list[str]:
        """BAE-R's substitutes for token ``i`` of ``words`` (whose original letters are ``core``), best first."""
        core = core or words.core(i)
        return self.rerank(words, i, self.proposals(words, i, core), core)


class _BAESearch(_Search):
    """A greedy search in BAE's order whose first LM call proposes words for every editable position at once."""

    def order(self, positions: list[int]) -> list[int]:
        ordered = super().order(positions)  # importance: the deletion ranking
        self.attack.next_words([self.words.before(i) for i in ordered])
        return ordered
