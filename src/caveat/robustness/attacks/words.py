"""A text as whitespace-separated tokens whose letters can be edited, keeping everything else intact."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GAPS = re.compile(r"(\S+)")
_CORE = re.compile(r"([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)")  # punctuation, one run of letters, punctuation
# the entities of a relation input, <e1>…</e1> and <e2>…</e2> (caveat.data.markers; this floor cannot import it)
_MARKED = re.compile(r"<(e[12])>.*?</\1>", re.DOTALL)


def match_case(template: str, word: str) -> str:
    """``word`` in the case pattern of ``template`` (UPPER, Capitalised or lower)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()


@dataclass(frozen=True)
class Words:
    """Tokens of a text and the whitespace around them: ``gaps`` has one more entry than ``tokens``
    (before the first token, between tokens, after the last), so an unedited text round-trips exactly.

    A token *is a word* when it contains a letter; its *core* is its single run of letters when it
    has exactly one (``"good,"`` -> ``"good"``; ``"it's"`` has none). Only cores are ever edited. Tokens inside a
    marked entity of a relation input (``<e1>big red dog</e1>``) are ``fixed``: they have no core, whatever their
    letters, so no attack edits an entity word.
    """

    tokens: tuple[str, ...]
    gaps: tuple[str, ...]
    fixed: frozenset[int] = frozenset()  # indices of tokens inside <e1>…</e1> or <e2>…</e2>

    @classmethod
    def of(cls, text: str) -> Words:
        parts = _GAPS.split(text)  # [gap, token, gap, token, ..., gap]
        tokens, gaps = tuple(parts[1::2]), tuple(parts[0::2])
        spans = [m.span() for m in _MARKED.finditer(text)]
        fixed, pos = set(), 0
        for i, (gap, token) in enumerate(zip(gaps, tokens) if spans else ()):
            start, pos = pos + len(gap), pos + len(gap) + len(token)
            if any(start < end and begin < pos for begin, end in spans):
                fixed.add(i)
        return cls(tokens, gaps, frozenset(fixed))

    @property
    def text(self) -> str:
        out = [self.gaps[0]]
        for token, gap in zip(self.tokens, self.gaps[1:]):
            out += [token, gap]
        return "".join(out)

    @property
    def n_words(self) -> int:
        """Tokens with at least one letter: the denominator of the change budget."""
        return sum(any(ch.isalpha() for ch in t) for t in self.tokens)

    def core(self, i: int) -> str | None:
        """The editable letters of token ``i``, or None (also for a token of a marked entity)."""
        if i in self.fixed:
            return None
        m = _CORE.fullmatch(self.tokens[i])
        return m.group(2) if m else None

    def replace(self, i: int, core: str) -> Words:
        """Token ``i`` with its core replaced (surrounding punctuation kept)."""
        pre, _, post = _CORE.fullmatch(self.tokens[i]).groups()
        return Words(self.tokens[:i] + (pre + core + post,) + self.tokens[i + 1 :], self.gaps, self.fixed)

    def before(self, i: int) -> str:
        """The text before the letters of token ``i`` (its leading punctuation included), trailing spaces dropped:
        the left context a causal language model continues (``bae.py``)."""
        head = Words(self.tokens[:i], self.gaps[: i + 1]).text
        pre = _CORE.fullmatch(self.tokens[i])
        return (head + (pre.group(1) if pre else "")).rstrip()

    def without(self, i: int) -> str:
        """The text with token ``i`` and one neighbouring gap removed."""
        drop = i if i > 0 else 1
        return Words(self.tokens[:i] + self.tokens[i + 1 :], self.gaps[:drop] + self.gaps[drop + 1 :]).text
