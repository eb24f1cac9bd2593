"""Character-level edits of one word: adjacent swap, insertion, deletion, keyboard-neighbour substitution.

The four "bugs" of DeepWordBug (Gao et al. 2018, "Black-box Generation of Adversarial Text Sequences
to Evade Deep Learning Classifiers") and TextBugger (Li et al. 2019, "TextBugger: Generating
Adversarial Text Against Real-world Applications"). As TextBugger does for swaps, the first and the
last letter always stay, which keeps the edited word readable.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from functools import lru_cache

from caveat.errors import ConfigError

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard() -> dict[str, str]:
    """Letters next to each letter on a QWERTY keyboard (same row and the rows above/below)."""
    where = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    return {
        ch: "".join(o for o, (r2, c2) in where.items() if o != ch and abs(r2 - r) <= 1 and abs(c2 - c) <= 1)
        for ch, (r, c) in where.items()
    }


KEYBOARD = _keyboard()


def _case_like(template: str, ch: str) -> str:
    return ch.upper() if template.isupper() else ch


def swaps(word: str) -> list[str]:
    """Each pair of adjacent inner letters swapped (identical letters give no edit)."""
    return [word[:j] + word[j + 1] + word[j] + word[j + 2 :] for j in range(1, len(word) - 2) if word[j] != word[j + 1]]


def deletions(word: str) -> list[str]:
    """Each inner letter removed."""
    return [word[:j] + word[j + 1 :] for j in range(1, len(word) - 1)]


def insertions(word: str) -> list[str]:
    """Each letter a-z inserted between two letters (in the case of the letter after it)."""
    return [word[:j] + _case_like(word[j], ch) + word[j:] for j in range(1, len(word)) for ch in string.ascii_lowercase]


def keyboard_typos(word: str) -> list[str]:
    """Each inner letter replaced by a key next to it."""
    return [
        word[:j] + _case_like(word[j], ch) + word[j + 1 :]
        for j in range(1, len(word) - 1)
        for ch in KEYBOARD.get(word[j].lower(), "")
    ]


EDITS: dict[str, Callable[[str], list[str]]] = {
    "adjacent": swaps,
    "insert": insertions,
    "delete": deletions,
    "keyboard": keyboard_typos,
}


class CharEdits:
    """Up to ``k`` edited spellings of a word, drawn from the given edit kinds.

    The candidates of each kind are shuffled by a generator seeded with ``seed`` and the word, then
    taken in turn from each kind (so ``k = 4`` over all kinds gives one of each): the same word gets
    the same candidates wherever it occurs, for a given seed.
    """

    def __init__(self, kinds: Sequence[str] = tuple(EDITS), *, k: int = 8, seed: int = 0) -> None:
        unknown = [name for name in kinds if name not in EDITS]
        if unknown or not kinds:
            raise ConfigError(f"character edits must be among {', '.join(EDITS)}. Got {list(kinds)!r}.")
        if k < 1:
            raise ConfigError(f"k (candidates per word) must be >= 1. Got {k!r}.")
        self.kinds, self.k, self.seed = tuple(kinds), k, seed
        self._cached = lru_cache(maxsize=65536)(self._candidates)

    def __call__(self, word: str) -> list[str]:
        return list(self._cached(word))

    def _candidates(self, word: str) -> tuple[str, ...]:
        rng = random.Random(f"{self.seed}:{word}")  # str seeds hash with SHA-512: stable across processes
        pools = []
        for name in self.kinds:
            pool = sorted(set(EDITS[name](word)) - {word})
            rng.shuffle(pool)
            pools.append(pool)
        out: dict[str, None] = {}  # ordered, without repeats (two kinds may give the same spelling)
        for turn in range(max(map(len, pools), default=0)):
            for pool in pools:
                if turn < len(pool):
                    out.setdefault(pool[turn])
        return tuple(out)[: self.k]
