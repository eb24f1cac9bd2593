"""Adversarial attacks on text classifiers, registered by name (``ATTACKS``).

Every attack is a greedy substitution search (``search.Attack``) over a source of candidates:

- ``charswap``: character edits of all four kinds (``char_adjacent``, ``char_insert``,
  ``char_delete``, ``char_keyboard`` alone); DeepWordBug / TextBugger style.
- ``wordsub``: embedding-neighbour word substitutes, words in a seeded random order.
- ``greedy``: the same substitutes, words ranked by importance (TextFooler).
- ``pwws``: PPDB synonyms, words ranked by probability-weighted saliency (Ren et al. 2019; ``pwws.py``).

Word attacks take another candidate source by name (``SOURCES``: ``embedding``, ``ppdb``) as
``greedy@ppdb``; every source's candidates pass an antonym filter (``lexicon.py``). All query the model
through ``Victim`` (which counts every text scored) and obey ``Constraints``.
"""

from caveat.robustness.attacks.base import AttackResult, Constraints, Encoder, Victim
from caveat.robustness.attacks.char import CharEdits
from caveat.robustness.attacks.lexicon import LEXICONS_ENV, AntonymFilter, Lexicons, LexiconSynonyms
from caveat.robustness.attacks.neighbours import EmbeddingNeighbours
from caveat.robustness.attacks.pwws import PWWS
from caveat.robustness.attacks.registry import ATTACKS, build_attack, parse_attacks
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.sources import SOURCES, AttackSetup
from caveat.robustness.attacks.words import Words

__all__ = [
    "ATTACKS",
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
    "Words",
    "build_attack",
    "parse_attacks",
]
