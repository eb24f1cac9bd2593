"""Readers: every format on a good file, every error case, IOB1 -> BIO2, real data (slow)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from caveat.data import READERS, iob1_to_bio2, read_split, read_texts
from caveat.errors import DataError
from caveat.types import Task, TextExample, TokenExample

TEXT = Task.TEXT_CLASSIFICATION
TOKENS = Task.TOKEN_CLASSIFICATION


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def read(path: Path | str, task: Task = TEXT, **kwargs):
    return read_split(path, name="train", task=task, **kwargs)


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


CONLL_2003 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
British JJ I-NP I-MISC
lamb NN I-NP B-MISC

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
"""


# --- good files ----------------------------------------------------------------------


def test_registry_has_every_format():
    assert READERS.names() == ["conll", "csv", "json", "jsonl", "label-sentence", "semeval", "tsv"]


def test_jsonl_dicts_and_pairs(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"text": "hi", "label": "greet"}, ["bye", "leave"]))
    split = read(path)
    assert split.name == "train" and split.source == str(path) and split.skipped == 0
    assert split.examples == [TextExample("hi", "greet", 1), TextExample("bye", "leave", 2)]


def test_jsonl_custom_fields_and_int_labels(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"sentence": "good", "y": 1}))
    split = read(path, text_field="sentence", label_field="y")
    assert split.examples == [TextExample("good", "1", 1)]


def test_json_list(tmp_path):
    path = write(tmp_path, "a.json", json.dumps([{"text": "a", "label": "x"}, ["b", "y"]], indent=2))
    assert [(e.text, e.label) for e in read(path).examples] == [("a", "x"), ("b", "y")]


def test_json_dict_of_splits_with_key_clinc_layout(tmp_path):
    data = {"oos_val": [["what is love", "oos"]], "train": [["hello", "greet"], ["bye", "leave"]]}
    path = write(tmp_path, "data_full.json", json.dumps(data, indent=4))
    split = read(f"{path}#train")
    assert split.source == f"{path}#train"
    assert [(e.text, e.label) for e in split.examples] == [("hello", "greet"), ("bye", "leave")]
    # Line numbers point at each record's first line in the file.
    lines = path.read_text().split("\n")
    assert [lines[e.line - 1].strip() for e in split.examples] == ["[", "["]
    assert '"hello"' in lines[split.examples[0].line]
    assert read(f"{path}#oos_val").examples[0].label == "oos"


def test_json_missing_key_lists_keys(tmp_path):
    path = write(tmp_path, "d.json", json.dumps({"train": [], "val": []}))
    with pytest.raises(DataError, match=r"d\.json: no split 'test'.*'train', 'val'"):
        read(f"{path}#test")
    with pytest.raises(DataError, match=r"d\.json: .*dict of splits.*#train"):
        read(path)


def test_csv_with_quotes(tmp_path):
    path = write(tmp_path, "a.csv", 'label,text\npos,"good, really ""good"""\nneg,bad\r\n')
    assert read(path).examples == [
        TextExample('good, really "good"', "pos", 2),
        TextExample("bad", "neg", 3),
    ]


def test_tsv_keeps_quotes_as_text(tmp_path):
    path = write(tmp_path, "a.tsv", 'text\tlabel\n"quoted" word\tpos\nplain\tneg\n')
    assert [(e.text, e.label, e.line) for e in read(path).examples] == [
        ('"quoted" word', "pos", 2),
        ("plain", "neg", 3),
    ]


def test_label_sentence_first_space_separates(tmp_path):
    path = write(tmp_path, "sst.train", "1 a fine , funny film\n0 dull  and  long\n\n")
    split = read(path, fmt="label-sentence")
    assert split.examples == [
        TextExample("a fine , funny film", "1", 1),
        TextExample("dull  and  long", "0", 2),
    ]


def test_crlf_and_u0085_and_bom(tmp_path):
    path = write(tmp_path, "a.jsonl", "\ufeff" + jsonl({"text": "a\u0085b", "label": "x"}).replace("\n", "\r\n"))
    assert read(path).examples == [TextExample("a\u0085b", "x", 1)]
    path = write(tmp_path, "b.train", "1 a\u0085b\r\n0 c\u2028d\r\n")
    assert [e.text for e in read(path, fmt="label-sentence").examples] == ["a\u0085b", "c\u2028d"]


def test_conll_2003_four_columns_iob1_to_bio2(tmp_path):
    path = write(tmp_path, "eng.train", CONLL_2003)
    split = read(path, TOKENS)
    assert split.examples == [
        TokenExample(
            ("EU", "rejects", "German", "British", "lamb"),
            ("B-ORG", "O", "B-MISC", "I-MISC", "B-MISC"),
            3,
        ),
        TokenExample(("Peter", "Blackburn"), ("B-PER", "I-PER"), 9),
    ]


def test_conll_two_columns_wnut_tabs_no_trailing_blank(tmp_path):
    path = write(tmp_path, "wnut.txt", "@paul\tO\nNew\tB-LOC\nYork\tI-LOC\n\n\n\nhi\tO")
    split = read(path, TOKENS)
    assert [e.tokens for e in split.examples] == [("@paul", "New", "York"), ("hi",)]
    assert split.examples[0].tags == ("O", "B-LOC", "I-LOC")
    assert [e.line for e in split.examples] == [1, 7]


def test_conll_keeps_nbsp_inside_a_token(tmp_path):
    path = write(tmp_path, "a.conll", "10\u00a0000 O\n")
    assert read(path, TOKENS).examples[0].tokens == ("10\u00a0000",)


def test_json_and_jsonl_tokens(tmp_path):
    record = {"tokens": ["Ann", "met", "Bob"], "tags": ["I-PER", "O", "B-PER"]}
    for name, content in [("a.jsonl", jsonl(record)), ("a.json", json.dumps([record]))]:
        (example,) = read(write(tmp_path, name, content), TOKENS).examples
        assert example == TokenExample(("Ann", "met", "Bob"), ("B-PER", "O", "B-PER"), 1)


def test_auto_format_by_extension(tmp_path):
    assert read(write(tmp_path, "a.JSONL", jsonl(["t", "l"]))).examples[0].label == "l"
    assert read(write(tmp_path, "a.csv", "text,label\nt,l\n")).examples[0].label == "l"
    assert read(write(tmp_path, "a.tsv", "text\tlabel\nt\tl\n")).examples[0].label == "l"
    assert read(write(tmp_path, "noext", "Ann B-PER\n"), TOKENS).examples[0].tags == ("B-PER",)
    with pytest.raises(DataError, match=r"a\.txt: cannot tell the data format.*data\.format.*label-sentence"):
        read(write(tmp_path, "a.txt", "1 text\n"))


def test_max_examples_keeps_first_n(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl(*[[f"t{i}", "l"] for i in range(10)]))
    assert [e.text for e in read(path, max_examples=3).examples] == ["t0", "t1", "t2"]


def test_unlabelled_only_when_asked(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"text": "hi"}, {"text": "yo", "label": "g"}))
    assert read(path, labelled=False).examples == [TextExample("hi", None, 1), TextExample("yo", "g", 2)]
    with pytest.raises(DataError, match=r"a\.jsonl:1: missing field 'label'"):
        read(path)
    csv_path = write(tmp_path, "a.csv", "text\nhello\n")
    assert read(csv_path, labelled=False).examples == [TextExample("hello", None, 2)]
    conll = write(tmp_path, "a.conll", "Ann\nmet\n")
    assert read(conll, TOKENS, labelled=False).examples == [TokenExample(("Ann", "met"), None, 1)]
    tokens = write(tmp_path, "t.jsonl", jsonl({"tokens": ["a"]}))
    assert read(tokens, TOKENS, labelled=False).examples[0].tags is None


def test_read_texts(tmp_path):
    assert read_texts(write(tmp_path, "a.jsonl", jsonl({"text": "a"}, {"text": "b", "id": 3}))) == ["a", "b"]
    assert read_texts(write(tmp_path, "a.txt", "one\r\n\n  \ntwo\u0085half\n")) == ["one", "two\u0085half"]
    with pytest.raises(DataError, match=r"b\.jsonl:2: no string field 'text' \(fields present: 'txt'\)"):
        read_texts(write(tmp_path, "b.jsonl", jsonl({"text": "a"}, {"txt": "b"})))
    with pytest.raises(DataError, match=r"c\.txt: no texts"):
        read_texts(write(tmp_path, "c.txt", "\n\n"))


# --- IOB1 -> BIO2 -----------------------------------------------------------------------


def test_iob1_to_bio2_conll_2003_style():
    tags = "I-ORG O I-MISC I-MISC B-MISC".split()
    assert iob1_to_bio2(tags) == "B-ORG O B-MISC I-MISC B-MISC".split()
    assert iob1_to_bio2(["I-PER", "I-LOC", "O", "I-LOC"]) == ["B-PER", "B-LOC", "O", "B-LOC"]


@pytest.mark.parametrize(
    "bio2",
    [
        "B-ORG O B-MISC I-MISC B-MISC".split(),
        "B-PER I-PER B-PER O B-LOC".split(),
        ["O", "O"],
        [],
    ],
)
def test_iob1_to_bio2_is_idempotent_on_bio2(bio2):
    assert iob1_to_bio2(bio2) == bio2
    assert iob1_to_bio2(iob1_to_bio2(bio2)) == bio2


# --- errors ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found\. Fix:"):
        read(tmp_path / "nope.jsonl")


def test_wrong_encoding_names_line_and_byte(tmp_path):
    path = write(tmp_path, "latin.jsonl", jsonl(["ok", "x"]).encode() + '["caf\u00e9", "x"]\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.jsonl:2: byte 0xe9 at column 6 is not valid UTF-8\. Fix: re-save"):
        read(path)
    with pytest.raises(DataError, match=r"latin\.jsonl:2: byte 0xe9"):
        read_texts(path)


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "pattern"),
    [
        ("a.jsonl", '["ok", "x"]\n{"text": "a",\n', {}, r"a\.jsonl:2: malformed JSON"),
        (
            "a.jsonl",
            jsonl({"sentence": "a", "label": "x"}),
            {},
            r"a\.jsonl:1: missing field 'text' \(fields present: 'sentence', 'label'\)"
            r".*--set data\.text_field=sentence",
        ),
        ("a.jsonl", jsonl(["ok", "x"], ["  ", "x"]), {}, r"a\.jsonl:2: empty text\. Fix:"),
        ("a.jsonl", jsonl(["ok", ""]), {}, r"a\.jsonl:1: empty label"),
        ("a.jsonl", jsonl(["ok", None]), {}, r"a\.jsonl:1: .*label"),
        ("a.jsonl", jsonl("just a string"), {}, r"a\.jsonl:1: expected an object"),
        ("a.json", '[\n  ["ok", "x"],\n  {"label": "x"}\n]', {}, r"a\.json:3: missing field 'text'"),
        ("a.json", '[["ok", "x"],', {}, r"a\.json:1: malformed JSON"),
        ("a.csv", "text,label\nok,x\n ,y\n", {}, r"a\.csv:3: empty text"),
        ("a.csv", "text,label\nok,x\nonly\n", {}, r"a\.csv:3: the row has 1 columns"),
        ("s.train", "1 fine\n0\n", {"fmt": "label-sentence"}, r"s\.train:2: no space between label and text"),
        ("s.train", "1 fine\n0 \n", {"fmt": "label-sentence"}, r"s\.train:2: empty text"),
        ("a.jsonl", "", {}, r"a\.jsonl: no examples"),
        ("a.jsonl", "\n\n", {}, r"a\.jsonl: no examples"),
    ],
)
def test_text_record_errors(tmp_path, name, content, kwargs, pattern):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=pattern):
        read(path, **kwargs)


def test_csv_header_without_field_suggests_set(tmp_path):
    path = write(tmp_path, "a.csv", "sentence,label\nok,x\n")
    with pytest.raises(
        DataError,
        match=r"a\.csv:1: the header has no column 'text' \(columns: 'sentence', 'label'\)"
        r"\. Fix: .*--set data\.text_field=",
    ):
        read(path)
    path = write(tmp_path, "b.tsv", "text\tgold\nok\tx\n")
    with pytest.raises(DataError, match=r"b\.tsv:1: the header has no column 'label'.*data\.label_field"):
        read(path)


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("a.conll", "Ann B-PER\nmet O\n\nBob\nran O\n", r"a\.conll:4: one column \('Bob'\)"),
        ("a.conll", "Ann O\nBob E-PER\n", r"a\.conll:2: bad tag 'E-PER'.*Fix: convert"),
        ("a.conll", "Ann O\nBob B-\n", r"a\.conll:2: bad tag 'B-'"),
        ("a.conll", "Ann per\n", r"a\.conll:1: bad tag 'per'"),
        ("a.jsonl", jsonl({"tokens": [], "tags": []}), r"a\.jsonl:1: empty sentence"),
        ("a.jsonl", jsonl({"tokens": ["a", "b"], "tags": ["O"]}), r"a\.jsonl:1: 2 tokens but 1 tags"),
        ("a.jsonl", jsonl({"tokens": ["a"], "tags": ["X"]}), r"a\.jsonl:1: bad tag 'X'"),
        ("a.jsonl", jsonl({"words": ["a"], "tags": ["O"]}), r"a\.jsonl:1: missing field 'tokens'.*'words'"),
        ("a.conll", "-DOCSTART- -X- O O\n\n", r"a\.conll: no examples"),
    ],
)
def test_token_record_errors(tmp_path, name, content, pattern):
    with pytest.raises(DataError, match=pattern):
        read(write(tmp_path, name, content), TOKENS)


def test_format_and_task_mismatch(tmp_path):
    with pytest.raises(DataError, match=r"a\.csv: the csv format holds text classification data"):
        read(write(tmp_path, "a.csv", "text,label\na,b\n"), TOKENS)
    with pytest.raises(DataError, match=r"a\.conll: the conll format holds token classification"):
        read(write(tmp_path, "a.conll", "Ann O\n"), fmt="conll")
    with pytest.raises(DataError, match=r"a\.jsonl: '#x' selects a split of a JSON file"):
        read(f"{write(tmp_path, 'a.jsonl', jsonl(['a', 'b']))}#x")


def test_skip_invalid_counts_and_warns(tmp_path, caplog):
    content = jsonl(["ok", "x"], ["", "x"]) + "{broken\n" + jsonl({"text": "y"}, ["fine", "z"])
    path = write(tmp_path, "a.jsonl", content)
    with caplog.at_level(logging.WARNING):
        split = read(path, skip_invalid=True)
    assert [e.text for e in split.examples] == ["ok", "fine"]
    assert split.skipped == 3
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 3 invalid records" in record.getMessage() and "a.jsonl:2" in record.getMessage()


def test_skip_invalid_conll_skips_whole_sentence(tmp_path):
    path = write(tmp_path, "a.conll", "Ann B-PER\n\nBob\nran O\n\nCid I-PER\n")
    split = read(path, TOKENS, skip_invalid=True)
    assert [e.tokens for e in split.examples] == [("Ann",), ("Cid",)]
    assert split.skipped == 1


def test_skip_invalid_all_bad_is_still_an_error(tmp_path):
    with pytest.raises(DataError, match=r"a\.jsonl: no examples \(2 invalid records skipped"):
        read(write(tmp_path, "a.jsonl", jsonl(["", "x"], ["", "y"])), skip_invalid=True)


# --- real data ------------------------------------------------------------------------------


DATA = Path(os.environ.get("CAVEAT_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


@pytest.mark.slow
def test_real_data_sets():
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set CAVEAT_DATA to the shared/data folder)")
    from caveat.data import LabelMap

    clinc = DATA / "clinc150" / "data_full.json"
    train = read(f"{clinc}#train")
    assert len(train) == 15000
    assert len(LabelMap.from_splits(train, TEXT)) == 150
    assert len(read(f"{clinc}#oos_test")) == 1000

    conll = read(DATA / "conll2003" / "eng.train", TOKENS)
    assert len(conll) == 14041
    tags = LabelMap.from_splits(conll, TOKENS)
    assert len(tags) == 9  # O + B/I for PER, ORG, LOC, MISC
    for ex in conll.examples:
        assert iob1_to_bio2(list(ex.tags)) == list(ex.tags)
        assert ex.tags[0] == "O" or ex.tags[0].startswith("B-")

    assert len(read(DATA / "sst2" / "stsa.binary.train", fmt="label-sentence")) == 6920
    # custrev.all has 3775 lines; 4 of them hold a label and no text (lines 769, 1368, 3691, 3775).
    cr = read(DATA / "cr" / "custrev.all", fmt="label-sentence", skip_invalid=True)
    assert len(cr) + cr.skipped == 3775
    assert cr.skipped == 4
