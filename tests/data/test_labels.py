"""LabelMap and check_labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.data import LabelMap, check_labels
from caveat.errors import DataError
from caveat.types import Split, Task, TextExample, TokenExample

TEXT = Task.TEXT_CLASSIFICATION
TOKENS = Task.TOKEN_CLASSIFICATION


def text_split(*labels, source="train.jsonl", name="train") -> Split:
    examples = [TextExample(f"t{i}", label, i + 1) for i, label in enumerate(labels)]
    return Split(name, examples, source)


def test_ids_round_trip():
    m = LabelMap(["neg", "pos"])
    assert len(m) == 2 and m.labels == ["neg", "pos"]
    assert m.to_id("pos") == 1 and m.from_id(0) == "neg" and m.from_id(np.int64(1)) == "pos"
    assert "pos" in m and "x" not in m


def test_json_round_trip():
    m = LabelMap(["b", "a", "c"])
    assert LabelMap.from_json(json.loads(json.dumps(m.to_json()))) == m
    with pytest.raises(DataError, match="JSON list of strings"):
        LabelMap.from_json({"a": 0})


def test_unknown_label_names_where_label_and_known():
    m = LabelMap([f"l{i:02d}" for i in range(15)])
    with pytest.raises(
        DataError, match=r"^test\.jsonl:7: unknown label 'zz'.*'l00'.*'l09', \.\.\. \(5 more\)\. Fix:"
    ) as info:
        m.to_id("zz", where="test.jsonl:7")
    assert "'l10'" not in str(info.value)
    with pytest.raises(DataError, match=r"^unknown label 'zz'"):
        m.to_id("zz")


def test_bad_ids_and_bad_maps():
    m = LabelMap(["a"])
    with pytest.raises(IndexError, match="label id 3 is out of range"):
        m.from_id(3)
    with pytest.raises(IndexError):
        m.from_id(-1)
    with pytest.raises(DataError, match=r"duplicate labels \['a'\]"):
        LabelMap(["a", "b", "a"])
    with pytest.raises(DataError, match="no labels"):
        LabelMap([])
    with pytest.raises(DataError, match="non-empty strings"):
        LabelMap(["a", ""])


def test_from_splits_text_sorted():
    m = LabelMap.from_splits(text_split("pos", "neg", "pos", "mixed"), TEXT)
    assert m.labels == ["mixed", "neg", "pos"]
    m = LabelMap.from_splits([text_split("b"), text_split("a")], "text-classification")
    assert m.labels == ["a", "b"]


def test_from_splits_ner_o_first_then_b_i_per_type():
    split = Split(
        "train",
        [
            TokenExample(("Ann", "in", "Rome"), ("B-PER", "O", "B-LOC"), 1),
            TokenExample(("ACME", "Corp"), ("B-ORG", "I-ORG"), 5),
        ],
        "ner.conll",
    )
    m = LabelMap.from_splits(split, TOKENS)
    assert m.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_from_splits_rejects_unlabelled():
    with pytest.raises(DataError, match=r"train\.jsonl:2: the example has no label"):
        LabelMap.from_splits(text_split("a", None), TEXT)


def test_check_labels():
    m = LabelMap(["neg", "pos"])
    check_labels(text_split("pos", "neg", None, source="dev.jsonl"), m, TEXT)
    with pytest.raises(
        DataError,
        match=r"^dev\.jsonl:3: label 'meh' is not in the training data \(2 examples.*'meh', 'ugh'",
    ):
        check_labels(text_split("pos", "neg", "meh", "ugh", source="dev.jsonl"), m, TEXT)


def test_check_labels_tokens():
    m = LabelMap(["O", "B-PER", "I-PER"])
    good = Split("test", [TokenExample(("Ann",), ("B-PER",), 1)], "t.conll")
    check_labels(good, m, TOKENS)
    bad = Split("test", [TokenExample(("Ann", "Rome"), ("B-PER", "B-LOC"), 4)], "t.conll")
    with pytest.raises(DataError, match=r"t\.conll:4: label 'B-LOC' is not in the training data"):
        check_labels(bad, m, TOKENS)
    with pytest.raises(DataError, match="holds TokenExamples"):
        check_labels(bad, m, TEXT)
