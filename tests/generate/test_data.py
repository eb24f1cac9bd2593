"""Question readers: SQuAD JSON and NQ-open JSONL, sampling, path resolution, every error case."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from caveat.errors import ConfigError, DataError
from caveat.generate.data import READERS, Question, read_questions

DATA_ROOT = Path(os.environ.get("CAVEAT_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "A",
            "paragraphs": [
                {
                    "context": "Darwin wrote On the Origin of Species.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Who wrote it?",
                            "answers": [
                                {"text": "Darwin", "answer_start": 0},
                                {"text": "Darwin", "answer_start": 0},
                                {"text": "Charles Darwin", "answer_start": 0},
                            ],
                        },
                        {
                            "id": "q2",
                            "question": "What did he write?",
                            "answers": [{"text": "On the Origin of Species", "answer_start": 13}],
                        },
                    ],
                },
            ],
        },
        {
            "title": "B",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France.",
                    "qas": [{"id": "q3", "question": "Capital of France?", "answers": [{"text": "Paris"}]}],
                },
            ],
        },
    ],
}


def write(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8"))
    return path


def nq_lines(n: int) -> str:
    return "".join(json.dumps({"question": f"question {i}?", "answer": [f"a{i}"]}) + "\n" for i in range(n))


def test_squad_reads_contexts_and_dedupes_answers_in_order(tmp_path):
    qs = read_questions(write(tmp_path / "s.json", json.dumps(SQUAD)))
    assert [q.id for q in qs] == ["q1", "q2", "q3"]
    assert qs[0] == Question(
        "q1", "Who wrote it?", ("Darwin", "Charles Darwin"), "Darwin wrote On the Origin of Species."
    )
    assert qs[2].context == "Paris is the capital of France."
    assert qs[2].answers == ("Paris",)


def test_nq_open_ids_are_line_numbers_blank_lines_skipped_and_only_newline_splits(tmp_path):
    text = (
        json.dumps({"question": "who wrote\u0085it", "answer": ["Darwin", "C. Darwin"]})
        + "\r\n"
        + "\n   \n"
        + json.dumps({"question": "capital of france", "answer": ["Paris"]})
        + "\n"
    )
    qs = read_questions(write(tmp_path / "nq.jsonl", text))
    assert qs == [
        Question("nq-1", "who wrote\u0085it", ("Darwin", "C. Darwin")),
        Question("nq-4", "capital of france", ("Paris",)),
    ]
    assert qs[0].context is None


def test_format_by_suffix_or_by_name(tmp_path):
    path = write(tmp_path / "questions.txt", nq_lines(2))
    assert [q.id for q in read_questions(path, format="nq-open")] == ["nq-1", "nq-2"]
    with pytest.raises(ConfigError, match=r"suffix '\.txt'.*format= one of: nq-open, squad"):
        read_questions(path)
    with pytest.raises(ConfigError, match="unknown question reader 'csv'; choose one of: nq-open, squad"):
        read_questions(path, format="csv")
    assert READERS.names() == ["nq-open", "squad"]


def test_limit_without_seed_takes_the_first(tmp_path):
    path = write(tmp_path / "nq.jsonl", nq_lines(10))
    assert [q.id for q in read_questions(path, limit=3)] == ["nq-1", "nq-2", "nq-3"]
    assert len(read_questions(path, limit=50)) == 10


def test_limit_with_seed_samples_without_replacement_in_file_order(tmp_path):
    path = write(tmp_path / "nq.jsonl", nq_lines(100))
    a = [int(q.id[3:]) for q in read_questions(path, limit=20, seed=7)]
    assert len(set(a)) == 20 and a == sorted(a)
    assert a == [int(q.id[3:]) for q in read_questions(path, limit=20, seed=7)]
    assert a != [int(q.id[3:]) for q in read_questions(path, limit=20, seed=8)]
    assert a != list(range(1, 21))


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "3"])
def test_bad_limit_is_a_config_error(tmp_path, limit):
    path = write(tmp_path / "nq.jsonl", nq_lines(3))
    with pytest.raises(ConfigError, match=f"limit must be an integer >= 1.*got {re.escape(repr(limit))}"):
        read_questions(path, limit=limit)


def test_relative_path_is_tried_under_caveat_data(tmp_path, monkeypatch):
    write(tmp_path / "root" / "nq" / "dev.jsonl", nq_lines(2))
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    monkeypatch.setenv("CAVEAT_DATA", str(tmp_path / "root"))
    assert len(read_questions("nq/dev.jsonl")) == 2
    where = r"nq/missing\.jsonl: file not found.*root/nq/missing\.jsonl.*set CAVEAT_DATA"
    with pytest.raises(DataError, match=where):
        read_questions("nq/missing.jsonl")


def test_missing_absolute_path_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        read_questions(tmp_path / "nope.json")


def test_malformed_json_names_the_line(tmp_path):
    path = write(tmp_path / "s.json", '{\n  "data": [\n    {"paragraphs": [}\n  ]\n}\n')
    with pytest.raises(DataError, match=r"s\.json:3: not valid JSON"):
        read_questions(path)
    lines = nq_lines(2) + "{'question': 'single quotes'}\n"
    with pytest.raises(DataError, match=r"nq\.jsonl:3: not valid JSON \(.* at column 2\)"):
        read_questions(write(tmp_path / "nq.jsonl", lines))


def test_question_without_answers_is_a_data_error(tmp_path):
    squad = {
        "data": [
            {
                "paragraphs": [
                    {"context": "c", "qas": [{"id": "v2", "question": "q?", "answers": [], "is_impossible": True}]}
                ]
            }
        ]
    }
    where = r"data\[0\]\.paragraphs\[0\]\.qas\[0\]"
    with pytest.raises(DataError, match=rf"question 'v2' \({where}\) has no answers"):
        read_questions(write(tmp_path / "s.json", json.dumps(squad)))
    lines = nq_lines(1) + json.dumps({"question": "q?", "answer": ["  "]}) + "\n"
    with pytest.raises(DataError, match=r"nq\.jsonl:2: question has no answers"):
        read_questions(write(tmp_path / "nq.jsonl", lines))
    with pytest.raises(DataError, match=r"nq2\.jsonl:1: \"answer\" must be a list of strings; got 'Paris'"):
        read_questions(write(tmp_path / "nq2.jsonl", json.dumps({"question": "q?", "answer": "Paris"})))


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.jsonl", "", "file is empty"),
        ("blank.json", " \n\n", "file is empty"),
        ("blank.jsonl", "\n\n\n", "file is empty"),
        ("nodata.json", '{"data": []}', "holds no questions"),
        ("layout.json", '{"version": "1.1"}', 'has no top-level "data" list'),
    ],
)
def test_empty_or_wrong_files_are_data_errors(tmp_path, name, content, problem):
    with pytest.raises(DataError, match=f"{name}: {problem}"):
        read_questions(write(tmp_path / name, content))


def test_repeated_ids_are_a_data_error(tmp_path):
    squad = json.loads(json.dumps(SQUAD))
    squad["data"][1]["paragraphs"][0]["qas"][0]["id"] = "q1"
    with pytest.raises(DataError, match="question id 'q1' occurs more than once"):
        read_questions(write(tmp_path / "s.json", json.dumps(squad)))


def test_real_files_have_the_documented_counts():
    xquad, nq = DATA_ROOT / "xquad_en" / "xquad.en.json", DATA_ROOT / "nq_open" / "NQ-open.dev.jsonl"
    if not (xquad.is_file() and nq.is_file()):
        pytest.skip(f"real data not found under {DATA_ROOT} (set CAVEAT_DATA)")
    rc, closed = read_questions(xquad), read_questions(nq)
    assert (len(rc), len(closed)) == (1190, 3610)
    assert all(q.context and len(q.answers) == 1 for q in rc)
    assert all(q.context is None and q.answers for q in closed)
    assert closed[0].id == "nq-1" and closed[0].answers == ("14 December 1972 UTC", "December 1972")
    sample = [int(q.id[3:]) for q in read_questions(nq, limit=50, seed=0)]
    assert len(set(sample)) == 50 and sample == sorted(sample) and sample[-1] > 50
