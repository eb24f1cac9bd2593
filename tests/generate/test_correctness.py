"""Correctness rules on planted answers: SQuAD normalisation, exact / contains / F1, rule specs, judge."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.errors import ConfigError, DataError
from caveat.generate.correctness import (
    RULES,
    Contains,
    ExactMatch,
    TokenF1,
    get_rule,
    judge,
    normalize_answer,
    token_f1,
)
from caveat.generate.data import Question


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Charles Darwin.", "charles darwin"),
        ("  A  cat's\ttoy! ", "cats toy"),
        ("Theater and anthem", "theater and anthem"),  # articles only as whole words
        ("an apple, the pear & a plum", "apple pear plum"),
        ("1,000 km\u2013long", "1000 km\u2013long"),  # ASCII punctuation only, as the official script
        ("the", ""),
    ],
)
def test_normalize_answer_follows_squad(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("answer", "reference", "f1"),
    [
        ("the cat sat", "cat sat down", 0.8),  # P = 1, R = 2/3
        ("x x y", "x y y", 2 / 3),  # multiset overlap: one x, one y
        ("Paris", "paris.", 1.0),
        ("Rome", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("the", "a", 0.0),  # both normalise to no tokens
    ],
)
def test_token_f1_hand_values(answer, reference, f1):
    assert token_f1(answer, reference) == pytest.approx(f1)


def test_exact_match():
    rule = get_rule("exact")
    assert rule("The Charles Darwin.", ["Charles Darwin"]) is True
    assert rule("Darwin", ["Charles Darwin"]) is False
    assert rule("darwin", ["Charles Darwin", "Darwin"]) is True
    assert rule("", ["The"]) is False  # an empty generation is never right
    assert rule("", [""]) is False


def test_contains_matches_whole_words_only():
    rule = get_rule("contains")
    assert rule("He went to the party.", ["art"]) is False
    assert rule("Paris, France", ["paris"]) is True
    assert rule("It is New York City.", ["York City"]) is True
    assert rule("a New Yorker", ["York"]) is False
    assert rule("The answer is Charles Darwin", ["Charles Darwin"]) is True
    assert rule("anything at all", ["The"]) is False  # a reference empty after normalisation is ignored


def test_f1_threshold_and_best_reference():
    assert get_rule("f1")("the cat sat", ["dog", "cat sat down"]) is True  # best F1 0.8
    assert get_rule("f1@0.8")("the cat sat", ["cat sat down"]) is True
    assert get_rule("f1@0.81")("the cat sat", ["cat sat down"]) is False
    assert get_rule("f1@1")("Paris", ["paris."]) is True
    assert get_rule("f1@0.3")("cat", ["cat sat down"]) is True  # F1 0.5
    assert get_rule("f1@0.6")("cat", ["cat sat down"]) is False


def test_rule_names_descriptions_and_round_trip():
    assert RULES.names() == ["contains", "exact", "f1"]
    assert get_rule("exact") == ExactMatch() and get_rule("contains") == Contains()
    assert get_rule(" f1@0.3 ") == TokenF1(0.3)
    names = [get_rule(s).name for s in ("exact", "contains", "f1", "f1@0.25")]
    assert names == ["exact", "contains", "f1@0.5", "f1@0.25"]
    for spec in ("exact", "contains", "f1@0.25"):
        assert get_rule(get_rule(spec).name) == get_rule(spec)
    assert get_rule("f1@0.3").describe() == "token F1 >= 0.3 against the best reference (SQuAD normalisation)"
    assert get_rule("exact").describe() == "exact match with some reference after SQuAD normalisation"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("f1@0", r"f1 threshold must lie in \(0, 1\]; got 0.0"),
        ("f1@1.5", r"f1 threshold must lie in \(0, 1\]; got 1.5"),
        ("f1@nan", r"must lie in \(0, 1\]; got 'f1@nan'"),
        ("f1@high", r"cannot read the threshold in 'f1@high'"),
        ("exact@0.3", r"rule 'exact' takes no threshold"),
        ("bleu", r"unknown correctness rule 'bleu'; choose one of: contains, exact, f1"),
    ],
)
def test_bad_rule_specs_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        get_rule(spec)


def test_judge_returns_one_bool_per_question():
    qs = [
        Question("1", "who?", ("Charles Darwin",)),
        Question("2", "where?", ("Paris", "Paris, France")),
        Question("3", "what?", ("art",)),
    ]
    answers = ["The Charles Darwin.", "in Paris", "a party"]
    np.testing.assert_array_equal(judge(answers, qs, "exact"), [True, False, False])
    np.testing.assert_array_equal(judge(answers, qs, get_rule("contains")), [True, True, False])
    # F1("in paris", "paris") = 2/3
    np.testing.assert_array_equal(judge(answers, qs, "f1"), [True, True, False])
    np.testing.assert_array_equal(judge(["it is in Paris"], qs[1:2], "f1"), [False])  # F1 = 0.4
    assert judge([], [], "exact").shape == (0,)


def test_judge_bad_input():
    qs = [Question("1", "who?", ("Darwin",))]
    with pytest.raises(DataError, match="got 2 answers for 1 questions"):
        judge(["a", "b"], qs, "exact")
    with pytest.raises(DataError, match="answer 0 \\(question '1'\\) is NoneType, not str; use ''"):
        judge([None], qs, "exact")
    with pytest.raises(DataError, match="not one string \\('Darwin'\\); wrap it"):
        get_rule("exact")("Darwin", "Darwin")
