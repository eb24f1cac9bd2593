"""Word substitutes that work offline: nearest neighbours in a model's input-embedding space.

TextFooler (Jin et al. 2020, "Is BERT Really Robust?") takes the nearest neighbours of a word in a
word-embedding space as its substitutes; here the space is the run backbone's own input embeddings,
so no download is needed. Only whole-word vocabulary entries are candidates (no ``##`` pieces, no
punctuation, no stop words). These spaces put antonyms close too (``good`` ~ ``bad``): every attack
passes its candidates through the antonym filter of ``lexicon.py`` (when the lexicons are there), and the
sentence-similarity constraint and a look at the examples remain the guard, as Morris et al. 2020 advise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.errors import ConfigError

_WORD = re.compile(r"[a-z]{2,}")
_WORD_START = ("Ġ", "▁")  # byte-level BPE / SentencePiece mark a word's first piece; WordPiece marks the rest (##)


def whole_words(vocab: Mapping[str, int]) -> dict[str, int]:
    """Vocabulary entries that are whole lower-case words: word -> row of the embedding matrix."""
    marked = any(t.startswith(_WORD_START) for t in vocab)
    out = {}
    for token, row in vocab.items():
        if marked:
            if not token.startswith(_WORD_START):
                continue  # a continuation piece
            token = token[1:]
        if _WORD.fullmatch(token):
            out.setdefault(token, row)
    return out


class EmbeddingNeighbours:
    """The ``k`` nearest whole words of a word by cosine similarity of input embeddings.

    Parameters
    ----------
    embeddings : (V, D) input-embedding matrix.
    vocab : token -> row of ``embeddings``.
    k : neighbours per word.
    min_cosine : neighbours less similar than this are dropped.
    exclude : words never proposed (stop words by default).

    A word that is not a whole-word entry of the vocabulary has no neighbours.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        vocab: Mapping[str, int],
        *,
        k: int = 20,
        min_cosine: float = 0.0,
        exclude: frozenset[str] = ENGLISH_STOP_WORDS,
    ) -> None:
        if k < 1:
            raise ConfigError(f"k (candidates per word) must be >= 1. Got {k!r}.")
        self.k, self.min_cosine = k, min_cosine
        self.rows = whole_words(vocab)  # every whole word can be looked up ...
        self.pool = [w for w in self.rows if w not in exclude]  # ... but only these are proposed
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)  # (V, D)
        self.unit = unit.astype(np.float32)
        self.pool_unit = self.unit[[self.rows[w] for w in self.pool]]  # (P, D)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_predictor(cls, predictor, **options) -> EmbeddingNeighbours:
        """Neighbours in the input embeddings of a ``Predictor``'s backbone."""
        weight = predictor.model.encoder.get_input_embeddings().weight.detach().float().cpu().numpy()
        return cls(weight, predictor.tokenizer.get_vocab(), **options)

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self._cache:
            self._cache[key] = self._neighbours(key)
        return list(self._cache[key])

    def _neighbours(self, word: str) -> list[str]:
        row = self.rows.get(word)
        if row is None or not self.pool:
            return []
        sims = self.pool_unit @ self.unit[row]  # (P,)
        top = np.argsort(-sims, kind="stable")[: self.k + 1]  # one extra: the word itself is in the pool
        return [self.pool[i] for i in top if self.pool[i] != word and sims[i] >= self.min_cosine][: self.k]
