"""Documents to summarise: the XSum-style JSONL reader, its configurable fields and errors, the summary prompt,
and generate-eval's refusal of options that belong to the other task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError, DataError
from caveat.generate import prompts
from caveat.generate.data import Question
from caveat.generate.documents import Document, read_documents
from caveat.generate.tasks import TASKS

DATA_ROOT = Path(os.environ.get("CAVEAT_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

RECORDS = [
    {"document": "The council approved a water park.\nIt opens in 2017.", "summary": "A park was approved.", "id": 7},
    {"document": "Police could not say how many cases were recorded.", "summary": "Figures are not held.", "id": "b"},
    {"document": "Wales beat England.", "summary": "Wales won.", "id": 9},
]


def write_jsonl(path: Path, records, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra, encoding="utf-8")
    return path


def test_reads_documents_ids_as_strings_in_file_order(tmp_path):
    docs = read_documents(write_jsonl(tmp_path / "x.jsonl", RECORDS, extra="\n\n"))
    assert docs == [
        Document("7", RECORDS[0]["document"], "A park was approved."),
        Document("b", RECORDS[1]["document"], "Figures are not held."),
        Document("9", "Wales beat England.", "Wales won."),
    ]


def test_fields_are_configurable_and_a_missing_id_is_the_line(tmp_path):
    renamed = [{"article": r["document"], "highlights": r["summary"]} for r in RECORDS]
    docs = read_documents(
        write_jsonl(tmp_path / "cnn.jsonl", renamed), document_field="article", summary_field="highlights"
    )
    assert [d.id for d in docs] == ["line-1", "line-2", "line-3"]
    assert docs[2] == Document("line-3", "Wales beat England.", "Wales won.")
    keyed = [{"text": r["document"], "ref": r["summary"], "key": f"k{i}"} for i, r in enumerate(RECORDS)]
    docs = read_documents(
        write_jsonl(tmp_path / "k.jsonl", keyed), document_field="text", summary_field="ref", id_field="key"
    )
    assert [d.id for d in docs] == ["k0", "k1", "k2"]


def test_missing_field_names_the_field_and_the_fix(tmp_path):
    records = RECORDS[:1] + [{"document": "d", "highlights": "s", "id": 2}]
    path = write_jsonl(tmp_path / "x.jsonl", records)
    with pytest.raises(
        DataError,
        match=r"x\.jsonl:2: missing field 'summary' \(fields present: 'document', 'highlights', 'id'\)\. "
        r"Fix: name the field with summary_field=<field>, e.g\. summary_field=highlights",
    ) as err:
        read_documents(path)
    assert flag_message(err.value).endswith(
        "Fix: name the field with --summary-field=<field>, e.g. --summary-field=highlights"
    )
    with pytest.raises(DataError, match=r"x\.jsonl:1: missing field 'article' .* document_field=<field>"):
        read_documents(path, document_field="article")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"document": "d", "summary": "  ", "id": 1}, "field 'summary' must be a non-empty string; got a blank one"),
        ({"document": ["d"], "summary": "s", "id": 1}, "field 'document' must be a non-empty string; got list"),
        ({"document": "d", "summary": "s", "id": [1]}, r"id field 'id' must be a string or an integer; got \[1\]"),
        (["not", "an", "object"], "expected an object, got list"),
    ],
)
def test_bad_records_name_the_line(tmp_path, line, problem):
    with pytest.raises(DataError, match=rf"x\.jsonl:2: {problem}"):
        read_documents(write_jsonl(tmp_path / "x.jsonl", [RECORDS[0], line]))


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"x\.jsonl:2: not valid JSON"):
        read_documents(write_jsonl(tmp_path / "x.jsonl", RECORDS[:1], extra="{oops\n"))
    with pytest.raises(DataError, match="e.jsonl: file is empty"):
        read_documents(write_jsonl(tmp_path / "e.jsonl", [], extra="\n \n"))
    with pytest.raises(DataError, match="document id '7' occurs more than once"):
        read_documents(write_jsonl(tmp_path / "d.jsonl", [RECORDS[0], RECORDS[0]]))
    with pytest.raises(ConfigError, match="must be three different fields"):
        read_documents(write_jsonl(tmp_path / "x.jsonl", RECORDS), summary_field="document")
    with pytest.raises(ConfigError, match="unknown document reader 'cnn'; choose one of: xsum"):
        read_documents(tmp_path / "x.jsonl", format="cnn")
    with pytest.raises(ConfigError, match="limit must be an integer >= 1 .* all documents"):
        read_documents(tmp_path / "x.jsonl", limit=0)


def test_limit_and_seeded_sample(tmp_path):
    records = [{"document": f"text {i}", "summary": f"s {i}", "id": i} for i in range(20)]
    path = write_jsonl(tmp_path / "x.jsonl", records)
    assert [d.id for d in read_documents(path, limit=3)] == ["0", "1", "2"]
    picked = [int(d.id) for d in read_documents(path, limit=5, seed=0)]
    assert picked == sorted(picked) and len(set(picked)) == 5
    assert picked == [int(d.id) for d in read_documents(path, limit=5, seed=0)]


def test_summary_prompt_for_one_article():
    doc = Document("1", "The council approved a {water} park.\nIt opens in 2017.", "A park was approved.")
    assert prompts.message(doc) == (
        "Summarise the text in one sentence.\n\n"
        "Text: The council approved a {water} park.\nIt opens in 2017.\n\n"
        "One-sentence summary:"
    )
    assert prompts.message(doc, template="TL;DR of: {document}") == f"TL;DR of: {doc.document}"
    with pytest.raises(ConfigError, match=r"use the fields \{document\} only"):
        prompts.message(doc, template="Q: {question}")
    # questions keep their prompts
    assert prompts.message(Question("q", "Who?", ("x",))).endswith("Question: Who?\nAnswer:")


def test_tasks_name_their_defaults_and_options():
    assert TASKS.names() == ["qa", "summarise"]
    qa, summarise = TASKS.get("qa"), TASKS.get("summarise")
    assert (qa.max_new_tokens, summarise.max_new_tokens) == (32, 64)
    assert qa.options == ("rule",) and "quality" in summarise.options and "summary_field" in summarise.options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--task", "summarise", "--rule", "exact"],
            "--rule does not apply to --task summarise; it belongs to --task qa",
        ),
        (["--quality", "rougeL"], "--quality does not apply to --task qa; it belongs to --task summarise"),
        (["--task", "summarize"], "unknown generation task 'summarize'; choose one of: qa, summarise"),
    ],
)
def test_generate_eval_refuses_options_of_the_other_task_before_loading_anything(tmp_path, args, message):
    result = CliRunner().invoke(app, ["generate-eval", "--data", str(tmp_path / "none.jsonl"), *args])
    assert isinstance(result.exception, ConfigError)
    assert message in flag_message(result.exception)


def test_real_xsum_file_reads():
    path = DATA_ROOT / "xsum" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"real data not found under {DATA_ROOT} (set CAVEAT_DATA)")
    docs = read_documents(path)
    assert len(docs) == 1000 and docs[0].id == "34268361"
    assert docs[0].summary.startswith("Proposals for an indoor water park")
    assert len(read_documents(path, limit=300, seed=0)) == 300
