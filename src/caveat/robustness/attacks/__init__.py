"""Adversarial attacks on text classifiers, registered by name (``ATTACKS``).

Every attack is a greedy substitution search (``search.Attack``) over one source of candidates:

- ``charswap``: character edits of all four kinds (``char_adjacent``, ``char_insert``,
  ``char_delete``, ``char_keyboard`` alone); DeepWordBug / TextBugger style.
- ``wordsub``: embedding-neighbour word substitutes, words in a seeded random order.
- ``greedy``: the same substitutes, words ranked by importance (TextFooler).

All query the model through ``Victim`` (which counts every text scored) and obey ``Constraints``.
"""

from caveat.robustness.attacks.base import AttackResult, Constraints, Encoder, Victim
from caveat.robustness.attacks.char import CharEdits
from caveat.robustness.attacks.neighbours import EmbeddingNeighbours
from caveat.robustness.attacks.registry import ATTACKS, AttackSetup, build_attack, parse_attacks
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.words import Words

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "AttackSetup",
    "CharEdits",
    "Constraints",
    "EmbeddingNeighbours",
    "Encoder",
    "Victim",
    "Words",
    "build_attack",
    "parse_attacks",
]
