"""Character edits: each kind does what it says, keeps the outer letters, and is seeded."""

from __future__ import annotations

import pytest

from caveat.errors import ConfigError
from caveat.robustness.attacks import CharEdits
from caveat.robustness.attacks.char import KEYBOARD, deletions, insertions, keyboard_typos, swaps


def test_each_kind():
    word = "great"
    assert swaps(word) == ["gerat", "graet"]  # inner pairs only: (r,e), (e,a)
    assert deletions(word) == ["geat", "grat", "gret"]
    assert len(insertions(word)) == 4 * 26 and all(len(w) == 6 for w in insertions(word))
    for typo in keyboard_typos(word):
        j = next(k for k in range(len(word)) if typo[k] != word[k])
        assert 0 < j < len(word) - 1 and typo[j] in KEYBOARD[word[j]]
    assert swaps("good") == [] and deletions("ab") == [] and keyboard_typos("ab") == []
    for edit in (swaps, deletions, insertions, keyboard_typos):
        assert all(w[0] == "g" and w[-1] == "t" for w in edit(word))
    assert insertions("Ab")[0] == "Aab" and insertions("AB")[0] == "AAB"


def test_candidates_are_seeded_mixed_and_bounded():
    edits = CharEdits(k=8, seed=0)
    first = edits("wonderful")
    assert first == CharEdits(k=8, seed=0)("wonderful") and len(first) == 8 and "wonderful" not in first
    kinds = [swaps, insertions, deletions, keyboard_typos]
    assert [next(k for k in range(4) if w in kinds[k]("wonderful")) for w in first[:4]] == [
        0,
        1,
        2,
        3,
    ]  # one of each in turn
    assert any(CharEdits(k=8, seed=s)("wonderful") != first for s in range(1, 4))
    assert CharEdits(["delete"], k=20)("abc") == ["ac"]
    with pytest.raises(ConfigError, match="character edits must be among"):
        CharEdits(["transpose"])
