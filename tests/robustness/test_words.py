"""Words: exact round trip, edits keep punctuation and spacing."""

from __future__ import annotations

from caveat.robustness.attacks import Words
from caveat.robustness.attacks.words import match_case


def test_round_trip_and_edits():
    text = "  A good story,  with (great) actors and it's fine.\n"
    words = Words.of(text)
    assert words.text == text
    assert words.tokens == ("A", "good", "story,", "with", "(great)", "actors", "and", "it's", "fine.")
    assert words.n_words == 9
    assert [words.core(i) for i in (2, 4, 7)] == ["story", "great", None]  # "it's" has two runs of letters
    assert words.replace(4, "grand").text == "  A good story,  with (grand) actors and it's fine.\n"
    assert Words.of("a b c").without(0) == "b c"
    assert Words.of("a b c").without(1) == "a c"
    assert Words.of("a b c").without(2) == "a b"
    assert Words.of(" , 12 ").n_words == 0


def test_match_case():
    assert [match_case(t, "fine") for t in ("Good", "GOOD", "good", "G")] == ["Fine", "FINE", "fine", "Fine"]


def test_words_of_a_marked_entity_are_never_editable():
    text = "The <e1>big red dog</e1> chased the <e2>old grey cat</e2> across the yard."
    words = Words.of(text)
    fixed = {words.tokens[i] for i in words.fixed}
    assert fixed == {"<e1>big", "red", "dog</e1>", "<e2>old", "grey", "cat</e2>"}
    assert [words.core(i) for i, t in enumerate(words.tokens) if t in ("red", "grey")] == [None, None]
    assert words.core(words.tokens.index("chased")) == "chased" and words.text == text
    edited = words.replace(words.tokens.index("chased"), "pursued")
    assert edited.fixed == words.fixed and edited.core(edited.tokens.index("red")) is None
    assert Words.of("a plain sentence").fixed == frozenset()
