"""Attacks by name: each entry builds an ``Attack`` from an ``AttackSetup``.

A word attack draws from its default candidate source (``greedy`` and ``wordsub``: ``embedding``; ``pwws``:
``ppdb``); ``NAME@SOURCE`` picks another, ``NAME@A+B`` several (merged in turn): ``greedy@ppdb``,
``pwws@embedding``, ``wordsub@embedding+ppdb``. Those names are registered too, one per combination of the
registered sources, so every face (the CLI, ``compare``, ``train.augment.attack``) takes them as it takes the
plain names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import combinations

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.robustness.attacks.char import EDITS, CharEdits
from caveat.robustness.attacks.pwws import PWWS
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.sources import SOURCES, AttackSetup

ATTACKS: Registry[Callable[[AttackSetup, str], Attack]] = Registry("attack")

__all__ = ["ATTACKS", "AttackSetup", "build_attack", "parse_attacks"]


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
    importance. The antonym filter applies here too, though a misspelling is seldom a word."""
    edits = CharEdits(kinds, k=min(setup.max_candidates, 8), seed=setup.seed)
    antonyms = setup.antonym_filter()
    return Attack(
        name,
        lambda core: antonyms(core, edits(core)),
        setup.constraints,
        setup.encoder,
        order="importance",
        seed=setup.seed,
        sources=("char",),
        antonyms=antonyms,
    )


def _word(order: str, sources: tuple[str, ...], setup: AttackSetup, name: str) -> Attack:
    """Word substitution filtered by sentence similarity (TextFooler, Jin et al. 2020), words visited by
    importance (``greedy``) or in a seeded random order (``wordsub``)."""
    antonyms = setup.antonym_filter()
    return Attack(
        name,
        setup.candidates(sources, antonyms),
        setup.constraints,
        setup.encoder,
        order=order,
        seed=setup.seed,
        sources=sources,
        antonyms=antonyms,
    )


def _pwws(sources: tuple[str, ...], setup: AttackSetup, name: str) -> Attack:
    """PWWS (Ren et al. 2019): words swapped for their best substitute in order of probability-weighted
    saliency."""
    antonyms = setup.antonym_filter()
    return PWWS(
        name,
        setup.candidates(sources, antonyms),
        setup.constraints,
        setup.encoder,
        seed=setup.seed,
        sources=sources,
        antonyms=antonyms,
        unknown=setup.unknown,
    )


# word attacks: name -> (builder taking the sources, default sources)
WORD_ATTACKS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "wordsub": (partial(_word, "random"), ("embedding",)),
    "greedy": (partial(_word, "importance"), ("embedding",)),
    "pwws": (_pwws, ("ppdb",)),
}

ATTACKS.register("charswap")(partial(_char, tuple(EDITS)))
for _kind in EDITS:
    ATTACKS.register(f"char_{_kind}")(partial(_char, (_kind,)))
for _name, (_build, _default) in WORD_ATTACKS.items():
    ATTACKS.register(_name)(partial(_build, _default))
    for _n in range(1, len(SOURCES.names()) + 1):
        for _sources in combinations(SOURCES.names(), _n):
            if _sources != _default:
                ATTACKS.register(f"{_name}@{'+'.join(_sources)}")(partial(_build, _sources))
