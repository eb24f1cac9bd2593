"""Attacks by name: each entry builds an ``Attack`` from an ``AttackSetup``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.robustness.attacks.base import Constraints, Encoder
from caveat.robustness.attacks.char import EDITS, CharEdits
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.words import match_case

ATTACKS: Registry[Callable[[AttackSetup, str], Attack]] = Registry("attack")


@dataclass
class AttackSetup:
    """What an attack is built from.

    Parameters
    ----------
    constraints : shared by every attack.
    encoder : sentence encoder for the similarity constraint.
    word_candidates : builds the word-substitute source (word -> lower-case words) on first use, so
        character attacks never pay for it; ``EmbeddingNeighbours.from_predictor`` for a run.
    max_candidates : candidates per word (character attacks use at most 8).
    seed : for character edits and the random visiting order.
    """

    constraints: Constraints
    encoder: Encoder
    word_candidates: Callable[[], Callable[[str], list[str]]] | None = None
    max_candidates: int = 20
    seed: int = 0
    _words: Callable[[str], list[str]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_candidates, bool) or not isinstance(self.max_candidates, int) or self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be an integer >= 1. Got {self.max_candidates!r}.")

    def words(self) -> Callable[[str], list[str]]:
        """The word-substitute source, built once."""
        if self._words is None:
            if self.word_candidates is None:
                raise ConfigError(
                    "word-substitution attacks need a source of substitutes (AttackSetup.word_candidates)"
                )
            self._words = self.word_candidates()
        return self._words


def parse_attacks(names: str | list[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> checked names, in order, without repeats."""
    items = names.split(",") if isinstance(names, str) else list(names)
    items = list(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not items:
        raise ConfigError(f"no attack given; choose from: {', '.join(ATTACKS.names())}")
    for name in items:
        ATTACKS.get(name)  # raises with the list of names
    return items


def build_attack(name: str, setup: AttackSetup) -> Attack:
    """The attack registered as ``name``."""
    return ATTACKS.get(name)(setup, name)


def _char(kinds: tuple[str, ...], setup: AttackSetup, name: str) -> Attack:
    """Character edits (DeepWordBug, Gao et al. 2018; TextBugger, Li et al. 2019), words visited by
    importance."""
    edits = CharEdits(kinds, k=min(setup.max_candidates, 8), seed=setup.seed)
    return Attack(name, edits, setup.constraints, setup.encoder, order="importance", seed=setup.seed)


def _word(order: str, setup: AttackSetup, name: str) -> Attack:
    """Word substitution by embedding neighbours, filtered by sentence similarity (TextFooler, Jin et
    al. 2020), words visited by importance (``greedy``) or in a seeded random order (``wordsub``)."""
    source = setup.words()
    k = setup.max_candidates

    def candidates(core: str) -> list[str]:
        return [match_case(core, w) for w in source(core)[:k]]

    return Attack(name, candidates, setup.constraints, setup.encoder, order=order, seed=setup.seed)


ATTACKS.register("charswap")(partial(_char, tuple(EDITS)))
for _kind in EDITS:
    ATTACKS.register(f"char_{_kind}")(partial(_char, (_kind,)))
ATTACKS.register("wordsub")(partial(_word, "random"))
ATTACKS.register("greedy")(partial(_word, "importance"))
