"""Adversarial attacks on text classifiers, registered by name (``ATTACKS``).

Every attack is a greedy substitution search (``search.Attack``) over a source of candidates:

- ``charswap``: character edits of all four kinds (``char_adjacent``, ``char_insert``,
  ``char_delete``, ``char_keyboard`` alone); DeepWordBug / TextBugger style.
- ``wordsub``: embedding-neighbour word substitutes, words in a seeded random order.
- ``greedy``: the same substitutes, words ranked by importance (TextFooler).
- ``pwws``: PPDB synonyms, words ranked by probability-weighted saliency (Ren et al. 2019; ``pwws.py``).
- ``bae``: words a language model proposes in context (source ``lm``), reranked by the text's likelihood, words
  ranked by importance (BAE-R, Garg & Ramakrishnan 2020; ``bae.py``).

Word attacks take another candidate source by name (``SOURCES``: ``embedding``, ``ppdb``) as
``greedy@ppdb``; every source's candidates pass an antonym filter (``lexicon.py``). ``all`` names every family
(``parse_attacks``); ``attack_sources`` says which sources an attack draws from. All query the model
through ``Victim`` (which counts every text scored) and obey ``Constraints``.
"""

from caveat.robustness.attacks.bae import BAE
from caveat.robustness.attacks.base import AttackResult, Constraints, Encoder, Victim, WordLM
from caveat.robustness.attacks.char import CharEdits
from caveat.robustness.attacks.lexicon import (
    LEXICONS_ENV,
    AntonymFilter,
    Lexicons,
    LexiconSynonyms,
    lexicons_folder,
    load_lexicons,
)
from caveat.robustness.attacks.neighbours import EmbeddingNeighbours
from caveat.robustness.attacks.pwws import PWWS
from caveat.robustness.attacks.registry import ALL, ATTACKS, FAMILIES, attack_sources, build_attack, parse_attacks
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.sources import SOURCES, AttackSetup
from caveat.robustness.attacks.words import Words

__all__ = [
    "ALL",
    "ATTACKS",
    "BAE",
    "FAMILIES",
    "LEXICONS_ENV",
    "PWWS",
    "SOURCES",
    "AntonymFilter",
    "Attack",
    "AttackResult",
    "AttackSetup",
    "CharEdits",
    "Constraints",
    "EmbeddingNeighbours",
    "Encoder",
    "LexiconSynonyms",
    "Lexicons",
    "Victim",
    "WordLM",
    "Words",
    "attack_sources",
    "build_attack",
    "lexicons_folder",
    "load_lexicons",
    "parse_attacks",
]
