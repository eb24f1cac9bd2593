"""Word lexicons for the word attacks: antonym pairs (never proposed) and PPDB synonyms (a candidate source).

Embedding neighbours put antonyms close (``good`` ~ ``bad``), and a sentence-similarity floor lets many
through (Morris et al. 2020, "Reevaluating Adversarial Examples in Natural Language"), so an attack that
swaps ``best`` for ``worst`` counts a label flip a reader would call correct. Counter-fitting
(Mrkšić et al. 2016, "Counter-fitting Word Vectors to Linguistic Constraints") pushes the antonyms of
WordNet and PPDB apart in the embedding space; here the same two lexicons are used directly, as a filter
on every candidate source (``AntonymFilter``). The PPDB synonym pairs (Ganitkevitch et al. 2013, "PPDB:
The Paraphrase Database") are a second source of substitutes beside embedding neighbours
(``LexiconSynonyms``), the kind of lexicon PWWS draws from (Ren et al. 2019, with WordNet).

A lexicon folder holds ``wordnet_antonyms.txt``, ``ppdb_antonyms.txt`` and ``ppdb_synonyms.txt``: one pair
of words a line, separated by whitespace (trailing spaces, blank lines and repeated pairs are fine).
Every file is optional: without an antonym file attacks still run, unfiltered, and say so. Where the folder is
(``lexicons_folder``): given, else ``$CAVEAT_LEXICONS``, else ``<data root>/lexicons``; ``load_lexicons`` reads it
for every face that attacks (``caveat attack``, ``caveat compare``, augmentation in training).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.errors import ConfigError, DataError
from caveat.io import data_root

ANTONYM_FILES = ("wordnet_antonyms.txt", "ppdb_antonyms.txt")
SYNONYM_FILE = "ppdb_synonyms.txt"
LEXICONS_ENV = "CAVEAT_LEXICONS"  # the folder; default <data root>/lexicons (``lexicons_folder``)
NOT_GIVEN = "no antonym lexicon was given, so candidates are not checked for antonyms"
EXAMPLES = 10  # withheld (word, antonym) pairs an attack reports


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The word pairs of a lexicon file, lower-cased, in file order (repeats kept; blank lines skipped)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(
                f"{path}:{number}: a lexicon line holds two words separated by a space; got {line.strip()!r}. "
                "Fix the line or remove it"
            )
        out.append((fields[0].lower(), fields[1].lower()))
    return out


def _symmetric(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """word -> every word paired with it, either direction; a word is never its own antonym."""
    out: dict[str, set[str]] = {}
    for a, b in pairs:
        if a != b:
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
    return {w: frozenset(v) for w, v in out.items()}


def _ordered(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """word -> its partners in order of first appearance, either direction, without repeats."""
    out: dict[str, dict[str, None]] = {}
    for a, b in pairs:
        if a != b:
            out.setdefault(a, {}).setdefault(b)
            out.setdefault(b, {}).setdefault(a)
    return {w: tuple(v) for w, v in out.items()}


@dataclass(frozen=True)
class Lexicons:
    """Antonyms and synonyms, keyed by lower-case word.

    Parameters
    ----------
    antonyms : word -> its antonyms (symmetric), or None when no antonym lexicon was found.
    synonyms : word -> its synonyms in lexicon order (symmetric), or None when no synonym lexicon was found.
    folder : where they were read from (None when built in memory).
    files : the files read.
    note : one line saying why ``antonyms`` is None (a missing file names the folder and the fix).
    """

    antonyms: Mapping[str, frozenset[str]] | None = None
    synonyms: Mapping[str, tuple[str, ...]] | None = None
    folder: str | None = None
    files: tuple[str, ...] = ()
    note: str | None = field(default=None)

    @classmethod
    def of(
        cls, *, antonyms: Iterable[tuple[str, str]] | None = None, synonyms: Iterable[tuple[str, str]] | None = None
    ) -> Lexicons:
        """Lexicons from word pairs in memory (either may be None: not available)."""
        return cls(
            antonyms=None if antonyms is None else _symmetric((a.lower(), b.lower()) for a, b in antonyms),
            synonyms=None if synonyms is None else _ordered((a.lower(), b.lower()) for a, b in synonyms),
            note=NOT_GIVEN if antonyms is None else None,
        )

    @classmethod
    def load(cls, folder: str | Path) -> Lexicons:
        """Read whichever of ``ANTONYM_FILES`` and ``SYNONYM_FILE`` are in ``folder`` (a missing folder reads
        as empty: attacks still run, unfiltered, and say why)."""
        folder = Path(folder).expanduser()
        found = [folder / name for name in ANTONYM_FILES if (folder / name).is_file()]
        synonym_file = folder / SYNONYM_FILE
        antonyms = _symmetric(p for path in found for p in read_pairs(path)) if found else None
        note = None
        if antonyms is None:
            note = (
                f"no antonym lexicon at {folder.absolute()} ({' or '.join(ANTONYM_FILES)}), so candidates are not "
                f"checked for antonyms; set {LEXICONS_ENV} to the folder that holds them"
            )
        return cls(
            antonyms=antonyms,
            synonyms=_ordered(read_pairs(synonym_file)) if synonym_file.is_file() else None,
            folder=str(folder.absolute()),
            files=tuple(p.name for p in found) + ((SYNONYM_FILE,) if synonym_file.is_file() else ()),
            note=note,
        )

    def antonyms_of(self, word: str) -> frozenset[str]:
        """The antonyms of ``word`` (any case), lower-case; empty when there is no antonym lexicon."""
        return (self.antonyms or {}).get(word.lower(), frozenset())


class AntonymFilter:
    """Drops the antonyms of a word from its candidates, and remembers the (word, antonym) pairs it withheld.

    One per attack, so its counts are that attack's. Case-insensitive; without an antonym lexicon
    (``lexicons`` None, or none found) it passes every candidate and ``report`` says why.
    """

    def __init__(self, lexicons: Lexicons | None) -> None:
        self.lexicons = lexicons
        self.enabled = lexicons is not None and lexicons.antonyms is not None
        self.withheld: dict[tuple[str, str], None] = {}  # ordered set of (word, antonym), lower-case

    def __call__(self, word: str, candidates: list[str]) -> list[str]:
        if not self.enabled:
            return candidates
        banned = self.lexicons.antonyms_of(word)
        if not banned:
            return candidates
        kept = []
        for c in candidates:
            if c.lower() in banned:
                self.withheld.setdefault((word.lower(), c.lower()))
            else:
                kept.append(c)
        return kept

    def report(self) -> dict:
        """``antonym_filter`` (bool) and, when on, ``antonyms_filtered`` (distinct word -> antonym substitutes
        withheld) and ``antonym_examples`` (the first few, ``"best -> worst"``); when off, ``antonym_filter_note``."""
        if not self.enabled:
            note = NOT_GIVEN if self.lexicons is None else self.lexicons.note
            return {"antonym_filter": False, "antonym_filter_note": note}
        return {
            "antonym_filter": True,
            "antonyms_filtered": len(self.withheld),
            "antonym_examples": [f"{a} -> {b}" for a, b in list(self.withheld)[:EXAMPLES]],
        }


class LexiconSynonyms:
    """A word's synonyms from a lexicon, in lexicon order: the ``ppdb`` candidate source.

    Parameters
    ----------
    synonyms : word -> synonyms (``Lexicons.synonyms``).
    exclude : never proposed (stop words by default, as for embedding neighbours).
    """

    def __init__(self, synonyms: Mapping[str, tuple[str, ...]], *, exclude: frozenset[str] = ENGLISH_STOP_WORDS):
        self.synonyms, self.exclude = synonyms, exclude

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        return [w for w in self.synonyms.get(key, ()) if w != key and w not in self.exclude]


def lexicons_folder(folder: str | Path | None = None) -> Path:
    """Where the word lexicons are: ``folder``, else ``$CAVEAT_LEXICONS``, else ``<data root>/lexicons`` (the data
    root is ``$CAVEAT_DATA``, default ``../shared/data``, as for the benchmarks and ``caveat demo``)."""
    if folder is not None:
        return Path(folder).expanduser()
    if os.environ.get(LEXICONS_ENV):
        return Path(os.environ[LEXICONS_ENV]).expanduser()
    return data_root() / "lexicons"


def load_lexicons(lexicons: str | Path | Lexicons | None = None) -> Lexicons:
    """The attacks' lexicons (``lexicons_folder``); a folder given by name must exist, the default one may not
    (attacks then run without the antonym filter, and say so)."""
    if isinstance(lexicons, Lexicons):
        return lexicons
    if lexicons is not None and not Path(lexicons).expanduser().is_dir():
        raise ConfigError(
            f"{{lexicons}} {lexicons} is not a folder; give the folder holding wordnet_antonyms.txt, "
            "ppdb_antonyms.txt and ppdb_synonyms.txt, or leave it out for $CAVEAT_LEXICONS or <data root>/lexicons",
            fields=("lexicons",),
        )
    return Lexicons.load(lexicons_folder(lexicons))
