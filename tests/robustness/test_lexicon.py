"""Lexicons: antonyms are never proposed by any candidate source or attack; the PPDB synonyms are a source;
without an antonym lexicon attacks still run and say the filter is off."""

from __future__ import annotations

import pytest

from caveat.errors import ConfigError, DataError
from caveat.robustness.attacks import (
    ATTACKS,
    AttackSetup,
    Constraints,
    Lexicons,
    Victim,
    Words,
    build_attack,
)
from caveat.robustness.attacks.sources import word_sources
from tests.robustness.conftest import BagOfWords, KeywordModel, ShortWordsLM

# each source proposes the antonym of the word first, so a filter that misses one is seen
NEIGHBOURS = {
    "good": ["bad", "fine", "evil"],
    "bad": ["good", "poor"],
    "best": ["worst", "top"],
    "great": ["awful", "grand"],
    "movie": ["film"],
}


def neighbours(word: str) -> list[str]:
    return list(NEIGHBOURS.get(word.lower(), []))


def write_lexicons(folder, *, antonyms: bool = True, synonyms: bool = True):
    """A small lexicon folder, written as the shared files are: trailing spaces, repeats, blank lines, any case."""
    folder.mkdir(parents=True, exist_ok=True)
    if antonyms:
        (folder / "wordnet_antonyms.txt").write_text("good bad \ngood bad \n\nBest WORST\n", encoding="utf-8")
        (folder / "ppdb_antonyms.txt").write_text("awful great \ngood evil\n", encoding="utf-8")
    if synonyms:
        (folder / "ppdb_synonyms.txt").write_text(
            "good bad\ngood fine\ngood nice\nbad poor\nbest worst\nbest top\ngreat awful\ngreat grand\nmovie film\n"
            "great grand\n",
            encoding="utf-8",
        )
    return folder


# the synonym file's pairs (antonyms among them, as in the real PPDB lists)
PAIRS = [("good", "bad"), ("good", "fine"), ("good", "nice"), ("bad", "poor"), ("best", "worst"), ("best", "top")]
PAIRS += [("great", "awful"), ("great", "grand"), ("movie", "film")]

# every (word, antonym) pair of the files above, both directions
ANTONYMS = {("good", "bad"), ("best", "worst"), ("great", "awful"), ("good", "evil")}
ANTONYMS |= {(b, a) for a, b in ANTONYMS}


def make_setup(lexicons: Lexicons | None, **constraints) -> AttackSetup:
    return AttackSetup(
        Constraints(**constraints),
        BagOfWords(),
        word_candidates=lambda: neighbours,
        lexicons=lexicons,
        max_candidates=5,
        # bae's lm source proposes every neighbour (antonyms first) after any context
        language_model=lambda: ShortWordsLM(list(dict.fromkeys(w for ws in NEIGHBOURS.values() for w in ws))),
    )


def is_antonym(word: str, candidate: str) -> bool:
    return (word.lower(), candidate.lower()) in ANTONYMS


WORDS = ["good", "Good", "GOOD", "bad", "best", "Best", "great", "awful", "movie", "worst", "evil"]


def test_lexicon_files_read_either_direction_case_insensitive(tmp_path):
    lex = Lexicons.load(write_lexicons(tmp_path / "lex"))
    assert lex.antonyms_of("GOOD") == {"bad", "evil"} and lex.antonyms_of("bad") == {"good"}
    assert lex.antonyms_of("worst") == {"best"} and lex.antonyms_of("great") == {"awful"}
    assert lex.antonyms_of("film") == frozenset()
    assert lex.synonyms["great"] == ("awful", "grand") and lex.synonyms["film"] == ("movie",)  # once, both ways
    assert lex.files == ("wordnet_antonyms.txt", "ppdb_antonyms.txt", "ppdb_synonyms.txt") and lex.note is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ppdb_antonyms.txt").write_text("good bad\nthree words here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ppdb_antonyms\.txt:2: a lexicon line holds two words .*'three words here'"):
        Lexicons.load(tmp_path / "bad")


def test_the_shared_lexicons_hold_the_pairs_of_the_issue(data_root):
    lex = Lexicons.load(data_root / "lexicons")
    assert {"worst", "bad"} <= lex.antonyms_of("best") and "bad" in lex.antonyms_of("good")
    assert lex.synonyms is not None and "terrific" in lex.synonyms["great"]


@pytest.mark.parametrize("source", word_sources())  # the lm source (in context): tests/robustness/test_bae.py
def test_no_source_proposes_an_antonym(source, tmp_path):
    setup = make_setup(Lexicons.load(write_lexicons(tmp_path / "lex")))
    unfiltered = make_setup(Lexicons.load(write_lexicons(tmp_path / "syn-only", antonyms=False)))
    flt = setup.antonym_filter()
    candidates = setup.candidates((source,), flt)
    raw = unfiltered.candidates((source,), unfiltered.antonym_filter())
    proposed_any = False
    for word in WORDS:
        out = candidates(word)
        assert not any(is_antonym(word, c) for c in out), (source, word, out)
        assert [c for c in raw(word) if not is_antonym(word, c)] == out  # only the antonyms go
        proposed_any |= bool(out)
    assert proposed_any
    assert any(is_antonym(w, c) for w in WORDS for c in raw(w))  # not vacuous: the source does propose them
    report = flt.report()
    assert report["antonym_filter"] is True and report["antonyms_filtered"] == len(flt.withheld) > 0
    assert all((a, b) in ANTONYMS for a, b in flt.withheld)
    assert "good -> bad" in report["antonym_examples"]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_no_attack_proposes_an_antonym(name, tmp_path):
    setup = make_setup(Lexicons.load(write_lexicons(tmp_path / "lex")), max_change=1.0, min_similarity=0.0)
    attack = build_attack(name, setup)
    for word in WORDS:
        assert not any(is_antonym(word, c) for c in attack.options(word)), (name, word)
    # and in a search: a model an antonym flips at once is never flipped by one (it is without the filter)
    unfiltered = build_attack(name, make_setup(Lexicons.of(synonyms=PAIRS), max_change=1.0, min_similarity=0.0))
    swapped = {}
    for label, candidate in (("filtered", attack), ("unfiltered", unfiltered)):
        victim = Victim(KeywordModel({"good": 3.0, "great": 1.0, "bad": -6.0, "awful": -6.0, "worst": -6.0}, bias=-1))
        swapped[label] = []
        for text in ("good great movie", "the best good movie was great"):
            r = candidate.attack(victim, text, "positive")
            before, after = Words.of(text), Words.of(r.adversarial)
            swapped[label] += [
                (before.core(i), after.core(i)) for i, (a, b) in enumerate(zip(before.tokens, after.tokens)) if a != b
            ]
    assert not any(is_antonym(a, b) for a, b in swapped["filtered"]), (name, swapped)
    assert name.startswith("char") or any(is_antonym(a, b) for a, b in swapped["unfiltered"])  # not vacuous
    report = attack.report()
    assert report["antonym_filter"] is True and isinstance(report["antonyms_filtered"], int)
    if name.startswith("char"):
        assert report["sources"] == ["char"]
    else:
        assert "@" not in name or report["sources"] == name.split("@")[1].split("+")  # the defaults: below
        assert report["antonyms_filtered"] > 0


def test_sources_of_each_attack():
    expected = {
        "charswap": ["char"],
        "char_keyboard": ["char"],
        "greedy": ["embedding"],
        "wordsub": ["embedding"],
        "pwws": ["ppdb"],
        "greedy@ppdb": ["ppdb"],
        "pwws@embedding": ["embedding"],
        "wordsub@embedding+ppdb": ["embedding", "ppdb"],
        "bae": ["lm"],
    }
    setup = make_setup(Lexicons.of(synonyms=[("good", "fine")]))
    assert {name: build_attack(name, setup).report()["sources"] for name in expected} == expected


def test_merged_sources_take_one_from_each_in_turn(tmp_path):
    setup = make_setup(Lexicons.of(antonyms=[("good", "evil")], synonyms=[("good", "nice"), ("good", "fine")]))
    both = build_attack("greedy@embedding+ppdb", setup)
    assert both.candidates("good") == ["bad", "nice", "fine"]  # bad, nice, fine (seen), evil (antonym)
    assert both.candidates("Good") == ["Bad", "Nice", "Fine"]


def test_without_an_antonym_lexicon_attacks_run_and_say_the_filter_is_off(tmp_path):
    empty = Lexicons.load(tmp_path / "nothing-here")
    assert empty.antonyms is None and empty.synonyms is None
    assert "no antonym lexicon at" in empty.note and "CAVEAT_LEXICONS" in empty.note and "\n" not in empty.note
    for lexicons, why in ((empty, "no antonym lexicon at"), (None, "no antonym lexicon was given")):
        attack = build_attack("greedy", make_setup(lexicons))
        assert "bad" in attack.candidates("good")  # unfiltered
        r = attack.attack(Victim(KeywordModel()), "the movie was good and the cast was great fun", "positive")
        assert r.attacked
        report = attack.report()
        assert report["antonym_filter"] is False and report["antonym_filter_note"].startswith(why)
        assert "antonyms_filtered" not in report
    with pytest.raises(ConfigError, match="the ppdb candidate source needs the PPDB synonym lexicon, and none is at"):
        build_attack("pwws", make_setup(empty))
    with pytest.raises(ConfigError, match="none is given: point lexicons"):
        build_attack("greedy@ppdb", make_setup(None))
