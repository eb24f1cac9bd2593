"""Attacks by name: each entry builds an ``Attack`` from an ``AttackSetup``.

A word attack draws from its default candidate source (``greedy`` and ``wordsub``: ``embedding``; ``pwws``:
``ppdb``); ``NAME@SOURCE`` picks another, ``NAME@A+B`` several (merged in turn): ``greedy@ppdb``,
``pwws@embedding``, ``wordsub@embedding+ppdb``. Those names are registered too, one per combination of the
registered sources, so every face (the CLI, ``compare``, ``train.augment.attack``) takes them as it takes the
plain names.

``bae`` (Garg & Ramakrishnan 2020; ``bae.py``) draws from the ``lm`` source alone: a language model proposing words
in context, which no context-free attack can take (``greedy@lm`` is not registered).

``ALL`` (``"all"``) stands for every attack family over its default source: ``charswap`` (the four character
kinds together), ``wordsub``, ``greedy``, ``pwws``; not ``bae``, which loads a language model.
``attack_sources(name)`` says which candidate sources an attack draws from without building it, so a comparison
can tell which attacks a recipe's augmentation saw.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import combinations

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.robustness.attacks.bae import BAE
from caveat.robustness.attacks.char import EDITS, CharEdits
from caveat.robustness.attacks.pwws import PWWS
from caveat.robustness.attacks.search import Attack
from caveat.robustness.attacks.sources import SOURCES, AttackSetup, word_sources

ATTACKS: Registry[Callable[[AttackSetup, str], Attack]] = Registry("attack")

ALL = "all"  # every family: FAMILIES
FAMILIES: list[str] = []  # filled below, as the families are registered
_SOURCES_OF: dict[str, tuple[str, ...]] = {}  # attack name -> the candidate sources it draws from

__all__ = ["ALL", "ATTACKS", "FAMILIES", "AttackSetup", "attack_sources", "build_attack", "parse_attacks"]


def parse_attacks(names: str | list[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> checked names, in order, without repeats; ``all`` stands for ``FAMILIES``."""
    items = names.split(",") if isinstance(names, str) else list(names)
    items = [_canonical(n.strip()) for n in items if n.strip()]
    items = list(dict.fromkeys(f for n in items for f in (FAMILIES if n == ALL else [n])))
    if not items:
        raise ConfigError(f"no attack given; choose from: {ALL}, {', '.join(ATTACKS.names())}")
    for name in items:
        ATTACKS.get(name)  # raises with the list of names
    return items


def _canonical(name: str) -> str:
    """A word attack's registered spelling: its sources in ``SOURCES`` order (``greedy@ppdb+embedding`` ->
    ``greedy@embedding+ppdb``), and its plain name for its default source (``pwws@ppdb`` -> ``pwws``)."""
    base, sep, given = name.partition("@")
    if not sep or base not in WORD_ATTACKS:
        return name
    parts = set(given.split("+"))
    if not parts <= set(SOURCES.names()):
        return name  # unknown: ATTACKS.get says so
    sources = tuple(s for s in SOURCES.names() if s in parts)
    return base if sources == WORD_ATTACKS[base][1] else f"{base}@{'+'.join(sources)}"


def attack_sources(name: str) -> tuple[str, ...]:
    """The candidate sources the attack registered as ``name`` draws from: ``("char",)`` for the character
    attacks, the named or default ``SOURCES`` for a word attack (``greedy`` -> ``("embedding",)``, ``greedy@ppdb``
    -> ``("ppdb",)``). The same as its figures' ``sources``, known without building the attack."""
    name = _canonical(name)
    ATTACKS.get(name)  # raises with the list of names
    return _SOURCES_OF[ATTACKS.resolve(name)]


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


def _bae(setup: AttackSetup, name: str) -> Attack:
    """BAE-R (Garg & Ramakrishnan 2020): words proposed by the ``lm`` source for their context, reranked by the
    text's likelihood, visited by importance. Builds (loads) the language model, so a missing one fails here."""
    return BAE(
        name,
        None,
        setup.constraints,
        setup.encoder,
        order="importance",
        seed=setup.seed,
        sources=("lm",),
        antonyms=setup.antonym_filter(),
        lm=setup.source("lm"),
        top_k=setup.lm_top_k,
        max_candidates=setup.max_candidates,
    )


# word attacks: name -> (builder taking the sources, default sources)
WORD_ATTACKS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "wordsub": (partial(_word, "random"), ("embedding",)),
    "greedy": (partial(_word, "importance"), ("embedding",)),
    "pwws": (_pwws, ("ppdb",)),
}


def _register(name: str, builder: Callable[[AttackSetup, str], Attack], sources: tuple[str, ...]) -> None:
    ATTACKS.register(name)(builder)
    _SOURCES_OF[name] = sources


_register("charswap", partial(_char, tuple(EDITS)), ("char",))
FAMILIES.append("charswap")
for _kind in EDITS:
    _register(f"char_{_kind}", partial(_char, (_kind,)), ("char",))
for _name, (_build, _default) in WORD_ATTACKS.items():
    _register(_name, partial(_build, _default), _default)
    FAMILIES.append(_name)
    for _n in range(1, len(word_sources()) + 1):
        for _sources in combinations(word_sources(), _n):
            if _sources != _default:
                _register(f"{_name}@{'+'.join(_sources)}", partial(_build, _sources), _sources)
_register("bae", _bae, ("lm",))
