"""make_splits (carving, stratification, determinism) and fingerprint."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from caveat.data import DataSplits, fingerprint, make_splits, read_split
from caveat.errors import ConfigError, DataError
from caveat.types import Split, Task, TextExample, TokenExample

TEXT = Task.TEXT_CLASSIFICATION
TOKENS = Task.TOKEN_CLASSIFICATION


def text_split(counts: dict[str, int], source: str = "train.jsonl", name: str = "train") -> Split:
    examples = []
    for label, n in counts.items():
        examples += [TextExample(f"{label} {i}", label, len(examples) + 1) for i in range(n)]
    return Split(name, examples, source)


def texts(split: Split) -> set[str]:
    return {e.text for e in split.examples}


def test_carves_validation_and_calibration_disjointly():
    train = text_split({"a": 60, "b": 40, "c": 100})
    s = make_splits(train, seed=13)
    assert (len(s.train), len(s.validation), len(s.calibration), s.test) == (180, 10, 10, None)
    parts = [texts(s.train), texts(s.validation), texts(s.calibration)]
    assert set.union(*parts) == texts(train)
    assert sum(map(len, parts)) == len(train)  # pairwise disjoint
    assert s.validation.name == "validation" and s.calibration.name == "calibration"
    assert s.validation.source == "train.jsonl [carved 10%, seed 13]"
    assert s.calibration.source == "train.jsonl [carved 10%, seed 13] [carved 50%, seed 13]"
    assert s.train.source == "train.jsonl"
    lines = [e.line for e in s.validation.examples]
    assert lines == sorted(lines)  # file order kept


def test_stratified_proportions():
    train = text_split({"a": 500, "b": 300, "c": 200})
    s = make_splits(train, seed=0, validation_fraction=0.2, calibration_fraction=0.5)
    assert Counter(e.label for e in s.validation.examples) == {"a": 50, "b": 30, "c": 20}
    assert Counter(e.label for e in s.calibration.examples) == {"a": 50, "b": 30, "c": 20}
    assert Counter(e.label for e in s.train.examples) == {"a": 400, "b": 240, "c": 160}


def test_train_fraction_keeps_a_stratified_seeded_share_of_train_only():
    # labels sorted in the file, as CLINC150's train is: the first half would hold only "a"
    train = text_split({"a": 500, "b": 300, "c": 200})
    full = make_splits(train, seed=0, validation_fraction=0.2)
    half = make_splits(train, seed=0, validation_fraction=0.2, train_fraction=0.5)
    assert Counter(e.label for e in half.train.examples) == {"a": 200, "b": 120, "c": 80}
    assert texts(half.train) < texts(full.train)  # a share of the same train split
    assert texts(half.validation) == texts(full.validation)  # the carves do not move
    assert texts(half.calibration) == texts(full.calibration)
    assert half.train.source == "train.jsonl [kept 50%, seed 0]"
    again = make_splits(train, seed=0, validation_fraction=0.2, train_fraction=0.5)
    assert texts(again.train) == texts(half.train)
    other = make_splits(train, seed=1, validation_fraction=0.2, train_fraction=0.5)
    assert texts(other.train) != texts(half.train)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_train_fraction_outside_its_interval_names_the_fix(value):
    with pytest.raises(ConfigError, match="data.train_fraction"):
        make_splits(text_split({"a": 10}), seed=0, train_fraction=value)


def test_stratified_keeps_total_exact_with_small_classes():
    train = text_split({f"c{i}": 3 for i in range(7)})  # 21 examples
    s = make_splits(train, seed=1, validation_fraction=0.3, calibration_fraction=0.5)
    assert len(s.validation) + len(s.calibration) == 6
    assert set(Counter(e.label for e in s.train.examples)) == {f"c{i}" for i in range(7)}


def test_a_singleton_class_stays_in_train_and_the_others_are_still_stratified():
    # SemEval-2010 Task 8 has a relation with one training example; carving it out broke check_labels
    for seed in range(20):
        train = text_split({"a": 30, "b": 1, "c": 20})
        s = make_splits(train, seed=seed, validation_fraction=0.2, calibration_fraction=0.5)
        assert len(s.validation) + len(s.calibration) == 10
        assert Counter(e.label for e in s.train.examples)["b"] == 1
        carved = Counter(e.label for e in s.validation.examples + s.calibration.examples)
        assert carved == {"a": 6, "c": 4}, carved


def test_deterministic_by_seed():
    train = text_split({"a": 50, "b": 50})
    one, two = make_splits(train, seed=7), make_splits(train, seed=7)
    assert one.validation.examples == two.validation.examples
    assert one.calibration.examples == two.calibration.examples
    other = make_splits(train, seed=8)
    assert texts(other.validation) | texts(other.calibration) != texts(one.validation) | texts(one.calibration)


def test_test_carve_is_disjoint_and_does_not_move_validation_seed_stream():
    train = text_split({"a": 100, "b": 100})
    s = make_splits(train, seed=3, test_fraction=0.1, validation_fraction=0.1, stratify=False)
    assert (len(s.train), len(s.validation), len(s.calibration), len(s.test)) == (160, 10, 10, 20)
    assert s.test.source == "train.jsonl [carved 10%, seed 3]"
    parts = [texts(x) for _, x in s.items()]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 200


def test_given_splits_are_kept():
    train, val = text_split({"a": 10}), text_split({"b": 10}, "dev.jsonl", "validation")
    test = text_split({"c": 4}, "test.jsonl", "test")
    s = make_splits(train, val, test=test, seed=0, test_fraction=0.5)
    assert s.train is train and s.test is test
    assert len(s.validation) == 5 and len(s.calibration) == 5
    assert s.calibration.source == "dev.jsonl [carved 50%, seed 0]"
    cal = text_split({"d": 3}, "cal.jsonl", "calibration")
    s = make_splits(train, val, cal, seed=0, extra={"oos": test})
    assert s.validation is val and s.calibration is cal and s.extra == {"oos": test}
    assert [role for role, _ in s.items()] == ["train", "validation", "calibration", "oos"]


def test_token_splits_are_random_carves():
    train = Split("train", [TokenExample((f"w{i}",), ("O",), i) for i in range(40)], "ner.conll")
    s = make_splits(train, seed=0, validation_fraction=0.25)
    assert (len(s.train), len(s.validation), len(s.calibration)) == (30, 5, 5)


@pytest.mark.parametrize("name", ["validation_fraction", "calibration_fraction", "test_fraction"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan")])
def test_fractions_outside_unit_interval(name, value):
    with pytest.raises(ConfigError, match=rf"{name}={value} is outside .*Fix: set {name}"):
        make_splits(text_split({"a": 10}), seed=0, **{name: value})


def test_carve_that_empties_a_split_names_the_fraction():
    with pytest.raises(
        DataError, match=r"validation_fraction=0\.1 of 4 train examples.*Fix: raise validation_fraction"
    ):
        make_splits(text_split({"a": 4}), seed=0)
    with pytest.raises(DataError, match=r"calibration_fraction=0\.5 of 1 validation.*Fix: lower calibration_fraction"):
        make_splits(text_split({"a": 10}), text_split({"a": 1}, "dev.jsonl"), seed=0)
    with pytest.raises(DataError, match=r"test_fraction=0\.5 and validation_fraction=0\.5.*lower"):
        make_splits(text_split({"a": 10}), seed=0, test_fraction=0.5, validation_fraction=0.5)


# --- fingerprint ---------------------------------------------------------------------------


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


ROWS = [("good film", "pos"), ('bad, "really" bad', "neg"), ("fine", "pos")]


def splits_from(path, task=TEXT, **kwargs) -> DataSplits:
    split = read_split(path, name="train", task=task, **kwargs)
    return DataSplits(split, split, split)


def test_fingerprint_same_across_formats(tmp_path):
    jsonl = write(tmp_path, "a.jsonl", "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in ROWS))
    as_json = write(tmp_path, "a.json", json.dumps({"train": [[t, y] for t, y in ROWS]}, indent=2))
    csv = write(
        tmp_path, "a.csv", "label,text\n" + "".join(f'{y},"{t.replace(chr(34), 2 * chr(34))}"\n' for t, y in ROWS)
    )
    ls = write(tmp_path, "a.txt", "".join(f"{y} {t}\n" for t, y in ROWS))
    prints = {
        fingerprint(splits_from(jsonl)),
        fingerprint(splits_from(f"{as_json}#train")),
        fingerprint(splits_from(csv)),
        fingerprint(splits_from(ls, fmt="label-sentence")),
    }
    assert len(prints) == 1 and len(prints.pop()) == 64


def test_fingerprint_tokens_same_across_formats(tmp_path):
    conll = write(tmp_path, "a.conll", "-DOCSTART- -X- O O\n\nAnn x y I-PER\nran x y O\n")
    jsonl = write(tmp_path, "a.jsonl", json.dumps({"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}) + "\n")
    assert fingerprint(splits_from(conll, TOKENS)) == fingerprint(splits_from(jsonl, TOKENS))


def test_fingerprint_changes_with_one_label_or_order():
    base = text_split({"a": 5, "b": 5})
    s = DataSplits(base, base, base)
    changed = list(base.examples)
    changed[3] = TextExample(changed[3].text, "b", changed[3].line)
    assert fingerprint(DataSplits(Split("train", changed, "x"), base, base)) != fingerprint(s)
    swapped = Split("train", list(reversed(base.examples)), "x")
    assert fingerprint(DataSplits(swapped, base, base)) != fingerprint(s)
    # roles count: the same examples as validation instead of test
    assert fingerprint(DataSplits(base, base, base, test=base)) != fingerprint(s)
    assert fingerprint(s) == fingerprint(DataSplits(text_split({"a": 5, "b": 5}, "other.csv"), base, base))
