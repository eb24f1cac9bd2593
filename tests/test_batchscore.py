"""Batch scoring at scale (caveat.batchscore): chunked, bounded-memory and resumable, equal to in-memory predict."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caveat.batchscore import JsonlSink, ParquetSink, chunked, count_inputs, iter_inputs, open_sink, score_stream
from caveat.cli.app import app
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.rows import add_seeded_mc_dropout, predict_rows
from tests.conftest import one_thread
from tests.service.conftest import close

WORDS = ["alpha", "beta", "gamma", "card", "parcel", "the", "my", "please", "now", "house"]
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 5)) for i in range(23)]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def predictor(served_run) -> Predictor:
    return Predictor.from_run(served_run)


@pytest.fixture(scope="module")
def expected(predictor) -> list[dict]:
    """The in-memory rows of all TEXTS at once."""
    return predict_rows(predictor, TEXTS, top_k=2).rows


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_inputs(path: Path, texts: list[str]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    elif suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "text"])
            w.writerows(enumerate(texts))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": texts}), path, row_group_size=5)
    else:
        path.write_text("\n".join(texts) + "\n\n", encoding="utf-8")  # a blank line is skipped
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt", ".parquet"])
def test_each_format_is_read_lazily_and_in_order(tmp_path, suffix):
    path = _write_inputs(tmp_path / f"in{suffix}", TEXTS)
    reader = iter_inputs(path)
    assert inspect.isgenerator(reader)
    assert list(reader) == TEXTS
    assert count_inputs(path) == (None if suffix == ".csv" else len(TEXTS))


def test_chunked_scoring_equals_in_memory_predict(predictor, expected, tmp_path):
    source = _write_inputs(tmp_path / "big.jsonl", TEXTS)
    out = tmp_path / "preds.jsonl"
    n = score_stream(predictor, iter_inputs(source), JsonlSink(out), chunk_size=4, top_k=2, total=len(TEXTS))
    assert n == len(TEXTS)
    got = _read_jsonl(out)
    assert close(got, expected)  # batch composition changes padding, not results


def test_parquet_output_is_a_directory_of_whole_parts_equal_to_in_memory(predictor, expected, tmp_path):
    import pyarrow.parquet as pq

    source = _write_inputs(tmp_path / "big.parquet", TEXTS)
    out = tmp_path / "preds.parquet"
    score_stream(predictor, iter_inputs(source), ParquetSink(out), chunk_size=10, top_k=2)
    assert sorted(p.name for p in out.iterdir()) == [
        "part-000000.parquet",
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    table = pq.read_table(out).to_pylist()
    assert [r["text"] for r in table] == TEXTS
    for got, want in zip(table, expected):
        assert close(json.loads(got["probabilities"]), want["probabilities"]) and got["label"] == want["label"]
        assert got["decision"] == want["decision"] and json.loads(got["prediction_set"]) == want["prediction_set"]


class Crash(RuntimeError):
    pass


class CrashingSink:
    """Writes ``chunks`` chunks through ``sink``, then dies half-way through the next one's bytes."""

    def __init__(self, sink: JsonlSink, chunks: int):
        self.sink, self.left = sink, chunks

    def done(self) -> int:
        return self.sink.done()

    def write(self, rows: list[dict]) -> None:
        if self.left == 0:
            line = json.dumps(rows[0])
            with self.sink.path.open("a", encoding="utf-8") as f:
                f.write(line[: len(line) // 2])  # the crash leaves half a row behind
            raise Crash("killed")
        self.left -= 1
        self.sink.write(rows)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["deterministic", "mc_dropout"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_output(predictor, tmp_path, method):
    source = _write_inputs(tmp_path / "big.txt", TEXTS)
    options = {"chunk_size": 5, "top_k": 2, "method": method, "samples": 3, "seed": 11}
    whole = tmp_path / "whole.jsonl"
    score_stream(predictor, iter_inputs(source), JsonlSink(whole), **options)

    out = tmp_path / "resumed.jsonl"
    with pytest.raises(Crash):
        score_stream(predictor, iter_inputs(source), CrashingSink(JsonlSink(out), chunks=2), **options)
    assert not out.read_text().endswith("\n")  # half a row on disk
    assert JsonlSink(out).done() == 10 and out.read_text().endswith("\n")  # cut back to the last whole row
    pulled = Guarded(iter_inputs(source), limit=None)
    assert score_stream(predictor, pulled, JsonlSink(out), **options) == len(TEXTS)
    assert _read_jsonl(out) == _read_jsonl(whole)  # the same rows, to the bit
    assert score_stream(predictor, iter_inputs(source), JsonlSink(out), **options) == len(TEXTS)  # done: no-op
    assert len(_read_jsonl(out)) == len(TEXTS)


def test_mc_dropout_rows_do_not_depend_on_the_chunking(predictor, tmp_path):
    rows = predict_rows(predictor, TEXTS[:6], top_k=2).rows
    add_seeded_mc_dropout(predictor, TEXTS[:6], rows, samples=3, seed=4, top_k=2)
    out = tmp_path / "mc.jsonl"
    score_stream(
        predictor, iter(TEXTS[:6]), JsonlSink(out), chunk_size=4, top_k=2, method="mc_dropout", samples=3, seed=4
    )
    assert [r["mc_dropout"] for r in _read_jsonl(out)] == [r["mc_dropout"] for r in rows]


class Guarded:
    """An input iterator that fails when pulled more than one chunk ahead of what was written."""

    def __init__(self, items, limit: int | None):
        self.items, self.limit, self.pulled = iter(items), limit, 0
        self.written = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.limit is not None and self.pulled >= self.written + self.limit:
            raise AssertionError(f"read input {self.pulled + 1} with only {self.written} written: not bounded")
        item = next(self.items)
        self.pulled += 1
        return item


def test_memory_is_bounded_the_input_is_never_read_past_the_current_chunk(predictor, tmp_path):
    guarded = Guarded(TEXTS, limit=4)

    class Counting(JsonlSink):
        def write(self, rows):
            super().write(rows)
            guarded.written += len(rows)

    assert score_stream(predictor, guarded, Counting(tmp_path / "o.jsonl"), chunk_size=4) == len(TEXTS)
    assert guarded.pulled == len(TEXTS)


def test_bad_options_and_inputs_fail_with_the_fix(predictor, tmp_path):
    with pytest.raises(ConfigError, match="chunk size must be an integer >= 1. Got 0"):
        chunked([], 0)
    with pytest.raises(ConfigError, match=r"choose an output ending in \.jsonl or \.parquet"):
        open_sink(tmp_path / "out.csv")
    with pytest.raises(DataError, match=r"input 3 is empty"):
        score_stream(predictor, ["a", "b", " ", "c"], JsonlSink(tmp_path / "e.jsonl"), chunk_size=2)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"txt": "b"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: no string field 'text'"):
        list(iter_inputs(bad))
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(ConfigError, match="is a file; a Parquet output is a directory"):
        ParquetSink(tmp_path / "file.parquet").done()


def test_the_cli_scores_a_file_into_out_and_resumes(served_run, expected, tmp_path):
    runner = CliRunner()
    source = _write_inputs(tmp_path / "big.csv", TEXTS)
    out = tmp_path / "preds.jsonl"
    args = ["predict", str(served_run), "--file", str(source), "--out", str(out), "--chunk-size", "6", "--top-k", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.exception
    assert result.stdout == "" and close(_read_jsonl(out), expected)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:12]))  # as if killed after two chunks
    assert runner.invoke(app, args).exit_code == 0
    assert close(_read_jsonl(out), expected)

    printed = runner.invoke(
        app, ["predict", str(served_run), "--file", str(source), "--top-k", "2", "--chunk-size", "5"]
    )
    assert close([json.loads(line) for line in printed.stdout.splitlines()], expected)
    result = runner.invoke(app, ["predict", str(served_run), "alpha", "--out", str(out)])
    assert isinstance(result.exception, ConfigError) and "--out is for --file" in str(result.exception)
