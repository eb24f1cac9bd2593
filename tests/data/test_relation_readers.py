"""Relation classification readers: SemEval-2010 Task 8 blocks, marked texts, and head/tail offsets."""

from __future__ import annotations

import json

import pytest

from caveat.data.markers import mark, marker_problem
from caveat.data.readers import read_split
from caveat.errors import DataError

TASK = "relation-classification"
SEMEVAL = (
    '1\t"The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>."\n'
    "Instrument-Agency(e2,e1)\n"
    "Comment: a note\n"
    "\n"
    '2\t"A <e1>cat</e1> sat on the <e2>mat</e2>."\n'
    "Other\n"
    "Comment:\n"
    "\n"
)


def test_semeval_blocks_are_read_and_detected_by_shape(tmp_path):
    path = tmp_path / "TRAIN_FILE.TXT"
    path.write_text(SEMEVAL)
    split = read_split(path, name="train", task=TASK)
    assert [ex.label for ex in split.examples] == ["Instrument-Agency(e2,e1)", "Other"]
    assert split.examples[0].text == "The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>."
    assert [ex.line for ex in split.examples] == [1, 5]
    assert len(read_split(path, name="train", task=TASK, fmt="semeval")) == 2


def test_semeval_without_relation_lines_reads_unlabelled(tmp_path):
    path = tmp_path / "TEST_FILE.TXT"
    path.write_text('8001\t"The <e1>audits</e1> were about <e2>waste</e2>."\n8002\t"A <e1>b</e1> c <e2>d</e2>."\n')
    split = read_split(path, name="test", task=TASK, labelled=False)
    assert [ex.label for ex in split.examples] == [None, None]
    with pytest.raises(DataError, match=r"TEST_FILE.TXT:1: label is null"):
        read_split(path, name="test", task=TASK)


def test_semeval_sentence_without_markers_names_file_line_and_fix(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text('1\t"The <e1>author</e1> of a keygen uses a disassembler."\nOther\n')
    with pytest.raises(DataError, match=r"bad.txt:1: the text has 0 '<e2>' markers.*Fix: mark the two entities"):
        read_split(path, name="train", task=TASK)


def test_semeval_format_needs_the_relation_task(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text(SEMEVAL)
    with pytest.raises(DataError, match="semeval format holds relation classification data.*Fix: set task="):
        read_split(path, name="train", task="text-classification", fmt="semeval")


def test_marked_jsonl_and_csv(tmp_path):
    text = "A <e1>cat</e1> sat on the <e2>mat</e2>."
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": text, "label": "Other"}) + "\n")
    (tmp_path / "a.csv").write_text(f'text,label\n"{text}",Other\n')
    for name in ("a.jsonl", "a.csv"):
        assert read_split(tmp_path / name, name="train", task=TASK).examples[0].text == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A cat sat on the <e2>mat</e2>.", "0 '<e1>' markers"),
        ("A <e1>cat <e2>sat</e1> on the mat</e2>.", "overlap"),
        ("A </e1>cat<e1> sat on the <e2>mat</e2>.", "'</e1>' comes before '<e1>'"),
        ("A <e1> </e1> sat on the <e2>mat</e2>.", "empty"),
    ],
)
def test_bad_markers_name_the_line_and_the_fix(tmp_path, text, problem):
    path = tmp_path / "a.jsonl"
    path.write_text("\n" + json.dumps({"text": text, "label": "Other"}) + "\n")
    with pytest.raises(DataError, match=rf"a.jsonl:2: .*{problem}.*Fix: mark the two entities.*data.head_field"):
        read_split(path, name="train", task=TASK)


def test_offsets_are_marked_in_jsonl_and_csv(tmp_path):
    text = "The author of a keygen uses a disassembler."
    head, tail = [4, 10], {"start": 30, "end": 42}
    rows = [{"text": text, "subj": head, "obj": tail, "label": "Instrument-Agency(e2,e1)"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.csv").write_text(f'text,label,subj,obj\n"{text}",X,"[4, 10]","{{""start"": 30, ""end"": 42}}"\n')
    want = "The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>."
    for name in ("a.jsonl", "a.csv"):
        split = read_split(tmp_path / name, name="train", task=TASK, head_field="subj", tail_field="obj")
        assert split.examples[0].text == want


@pytest.mark.parametrize(
    ("head", "tail", "problem"),
    [
        ([4, 10], [8, 12], "the head span \\[4, 10\\] and the tail span \\[8, 12\\] overlap"),
        ([4, 10], [30, 99], "the tail span \\[30, 99\\] is outside the text \\(length 43\\)"),
        ([-1, 3], [30, 42], "the head span \\[-1, 3\\] is outside the text"),
        ("4-10", [30, 42], "the head field 'head' is '4-10', not a character span"),
        ([4, 10], None, "the tail field 'tail' is None"),
    ],
)
def test_bad_offsets_name_the_line_and_the_fix(tmp_path, head, tail, problem):
    record = {"text": "The author of a keygen uses a disassembler.", "label": "X", "head": head}
    if tail is not None:
        record["tail"] = tail
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"a.jsonl:1: {problem}.*Fix: "):
        read_split(path, name="train", task=TASK)


def test_csv_with_a_head_column_needs_a_tail_column(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label,head,obj\n"a b",X,"[0, 1]","[2, 3]"\n')
    with pytest.raises(DataError, match=r"a.csv:1: the header has no column 'tail'.*data.tail_field=obj"):
        read_split(path, name="train", task=TASK)


def test_mark_keeps_adjacent_entities_apart():
    assert mark("abcde", (3, 5), (0, 3)) == "<e2>abc</e2><e1>de</e1>"
    assert mark("abcde", (0, 3), (3, 5)) == "<e1>abc</e1><e2>de</e2>"
    assert marker_problem(mark("abcde", (3, 5), (0, 3))) is None


def test_real_semeval_files(data_root):
    folder = data_root / "semeval2010_task8"
    if not folder.is_dir():
        pytest.skip("SemEval-2010 Task 8 not in the shared data")
    train = read_split(folder / "TRAIN_FILE.TXT", name="train", task=TASK)
    test = read_split(folder / "TEST_FILE_FULL.TXT", name="test", task=TASK)
    assert (len(train), len(test)) == (8000, 2717)
    assert len({ex.label for ex in train.examples}) == 19
