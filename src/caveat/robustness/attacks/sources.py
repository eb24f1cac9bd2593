"""Where word substitutes come from: the candidate sources by name (``SOURCES``) and the ``AttackSetup`` that
builds them.

- ``embedding``: the nearest whole words in the run backbone's input-embedding space (``EmbeddingNeighbours``;
  the kind of substitutes TextFooler uses, Jin et al. 2020).
- ``ppdb``: the word's synonyms in the PPDB synonym lexicon (``LexiconSynonyms``; Ganitkevitch et al. 2013),
  the kind of source PWWS draws from (Ren et al. 2019, with WordNet).
- ``lm``: a language model proposing words *in context* (``WordLM``, built by ``AttackSetup.language_model``), the
  source of BAE (Garg & Ramakrishnan 2020; ``bae.py``). Its substitutes depend on the whole text, not on the word
  alone, so no context-free attack draws from it (``IN_CONTEXT``): only ``bae``.

An attack draws from one source or several (merged in turn, one from each, without repeats); whatever the
sources, its candidates pass its ``AntonymFilter`` before they are cut to ``max_candidates``, so an antonym is
never proposed and the next candidate takes its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.robustness.attacks.base import Constraints, Encoder, WordLM
from caveat.robustness.attacks.lexicon import SYNONYM_FILE, AntonymFilter, Lexicons, LexiconSynonyms
from caveat.robustness.attacks.words import match_case

WordSource = Callable[[str], list[str]]  # a word -> lower-case substitutes, best first

SOURCES: Registry[Callable[[AttackSetup], WordSource | WordLM]] = Registry("candidate source")
IN_CONTEXT = frozenset({"lm"})  # sources that propose words in context (a WordLM), not word -> substitutes


def word_sources() -> list[str]:
    """The registered sources that map a word to its substitutes: those ``NAME@SOURCE`` word attacks may take."""
    return [name for name in SOURCES.names() if name not in IN_CONTEXT]


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
    language_model : builds the ``lm`` source (a ``WordLM``) on first use, so it is loaded once per setup and only
        when an attack draws from it (``bae``); ``robustness.run`` loads the packaged SmolLM2 for a run.
    lm_top_k : words the ``lm`` source proposes per position (BAE's K), before its filters and the reranking.
    """

    constraints: Constraints
    encoder: Encoder
    word_candidates: Callable[[], WordSource] | None = None
    max_candidates: int = 20
    seed: int = 0
    lexicons: Lexicons | None = None
    unknown: str = "[UNK]"
    language_model: Callable[[], WordLM] | None = None
    lm_top_k: int = 20
    _built: dict[str, WordSource | WordLM] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_candidates, bool) or not isinstance(self.max_candidates, int) or self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be an integer >= 1. Got {self.max_candidates!r}.")
        if isinstance(self.lm_top_k, bool) or not isinstance(self.lm_top_k, int) or self.lm_top_k < 1:
            raise ConfigError(
                f"{{lm_top_k}} must be an integer >= 1 (words the language model proposes per position). "
                f"Got {self.lm_top_k!r}.",
                fields=("lm_top_k",),
            )

    def source(self, name: str) -> WordSource | WordLM:
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
        in_context = [name for name in names if name in IN_CONTEXT]
        if in_context:
            raise ConfigError(
                f"the {in_context[0]} candidate source proposes words in their context, not for a word alone: "
                "only bae draws from it"
            )
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


@SOURCES.register("lm")
def lm(setup: AttackSetup) -> WordLM:
    """A language model proposing words in context (``AttackSetup.language_model``), built once per setup."""
    if setup.language_model is None:
        raise ConfigError(
            "the lm candidate source (bae) needs a language model (AttackSetup.language_model); caveat attack and "
            "attack_run load the packaged SmolLM2-135M-Instruct ({lm}='default') or a local causal-LM folder",
            fields=("lm",),
        )
    return setup.language_model()
