"""Where word substitutes come from: the candidate sources by name (``SOURCES``) and the ``AttackSetup`` that
builds them.

- ``embedding``: the nearest whole words in the run backbone's input-embedding space (``EmbeddingNeighbours``;
  the kind of substitutes TextFooler uses, Jin et al. 2020).
- ``ppdb``: the word's synonyms in the PPDB synonym lexicon (``LexiconSynonyms``; Ganitkevitch et al. 2013),
  the kind of source PWWS draws from (Ren et al. 2019, with WordNet).

An attack draws from one source or several (merged in turn, one from each, without repeats); whatever the
sources, its candidates pass its ``AntonymFilter`` before they are cut to ``max_candidates``, so an antonym is
never proposed and the next candidate takes its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.robustness.attacks.base import Constraints, Encoder
from caveat.robustness.attacks.lexicon import SYNONYM_FILE, AntonymFilter, Lexicons, LexiconSynonyms
from caveat.robustness.attacks.words import match_case

WordSource = Callable[[str], list[str]]  # a word -> lower-case substitutes, best first

SOURCES: Registry[Callable[[AttackSetup], WordSource]] = Registry("candidate source")


@dataclass
class AttackSetup:
    """What an attack is built from.

    Parameters
    ----------
    constraints : shared by every attack.
    encoder : sentence encoder for the similarity constraint.
    word_candidates : builds the ``embedding`` source (word -> lower-case words) on first use, so character
        attacks never pay for it; ``EmbeddingNeighbours.from_predictor`` for a run.
    max_candidates : candidates per word (character attacks use at most 8).
    seed : for character edits and the random visiting order.
    lexicons : antonyms (filtered out of every source) and synonyms (the ``ppdb`` source); None: no lexicon,
        so no antonym filter (every attack's report says so) and no ``ppdb`` source.
    unknown : the text that stands for an unknown word (PWWS's word saliency): the tokenizer's unknown token.
    """

    constraints: Constraints
    encoder: Encoder
    word_candidates: Callable[[], WordSource] | None = None
    max_candidates: int = 20
    seed: int = 0
    lexicons: Lexicons | None = None
    unknown: str = "[UNK]"
    _built: dict[str, WordSource] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_candidates, bool) or not isinstance(self.max_candidates, int) or self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be an integer >= 1. Got {self.max_candidates!r}.")

    def source(self, name: str) -> WordSource:
        """The candidate source registered as ``name``, built once (unfiltered: see ``candidates``)."""
        if name not in self._built:
            self._built[name] = SOURCES.get(name)(self)
        return self._built[name]

    def antonym_filter(self) -> AntonymFilter:
        """A fresh filter over this setup's antonyms (one per attack, so counts are per attack)."""
        return AntonymFilter(self.lexicons)

    def candidates(self, names: Sequence[str], antonyms: AntonymFilter) -> Callable[[str], list[str]]:
        """A word's letters -> up to ``max_candidates`` substitutes in its case: the sources ``names`` merged in
        turn, antonyms of the word dropped (by ``antonyms``) before the cut."""
        sources = [self.source(name) for name in names]
        k = self.max_candidates

        def candidates(core: str) -> list[str]:
            merged = interleave([source(core) for source in sources])
            return [match_case(core, w) for w in antonyms(core, merged)[:k]]

        return candidates


def interleave(lists: Sequence[list[str]]) -> list[str]:
    """One from each list in turn, without repeats (case-insensitive; the first spelling kept)."""
    out: dict[str, str] = {}
    for turn in range(max(map(len, lists), default=0)):
        for items in lists:
            if turn < len(items):
                out.setdefault(items[turn].lower(), items[turn])
    return list(out.values())


@SOURCES.register("embedding")
def embedding(setup: AttackSetup) -> WordSource:
    """Nearest neighbours in the run backbone's input embeddings (``AttackSetup.word_candidates``)."""
    if setup.word_candidates is None:
        raise ConfigError("word-substitution attacks need a source of substitutes (AttackSetup.word_candidates)")
    return setup.word_candidates()


@SOURCES.register("ppdb")
def ppdb(setup: AttackSetup) -> WordSource:
    """Synonyms from the PPDB lexicon (``AttackSetup.lexicons``)."""
    lexicons = setup.lexicons
    if lexicons is None or lexicons.synonyms is None:
        where = f"at {lexicons.folder}/{SYNONYM_FILE}" if lexicons is not None and lexicons.folder else "given"
        raise ConfigError(
            f"the ppdb candidate source needs the PPDB synonym lexicon, and none is {where}: point {{lexicons}} "
            f"(or CAVEAT_LEXICONS) at the folder holding {SYNONYM_FILE}, or draw from embedding neighbours "
            "(greedy, wordsub, pwws@embedding)",
            fields=("lexicons",),
        )
    return LexiconSynonyms(lexicons.synonyms)
