"""Scoring a file on Ray (caveat.raybatch): the rows of the single-process stream, in input order.

The argument checks run without Ray installed; the scoring itself starts a local Ray (``slow``, and skipped
where the ``ray`` extra is missing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caveat.batchscore import JsonlSink, ParquetSink, iter_inputs, score_stream
from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError, DataError, RunDirError
from caveat.inference import Predictor
from caveat.raybatch import score_on_ray
from tests.conftest import one_thread

WORDS = ["alpha", "beta", "gamma", "card", "parcel", "the", "my", "please", "now", "house"]
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 5)) for i in range(50)]


def _write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ray_needs_a_file_and_an_output(tmp_path):
    runner = CliRunner()
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    cases = {
        ("--file", str(source)): "add --out OUT ",
        ("--out", str(tmp_path / "o.jsonl")): "add --file FILE ",
        ("a text",): "add --file FILE and --out OUT ",
    }
    for args, fix in cases.items():
        result = runner.invoke(app, ["predict", str(tmp_path / "no-run"), *args, "--ray"])
        assert isinstance(result.exception, ConfigError), result.output
        assert str(result.exception).startswith(f"--ray scores a file into an output: {fix}")


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    with pytest.raises(ConfigError, match=r"scoring on Ray needs Ray Data .*pip install 'caveat\[ray\]'"):
        score_on_ray(tmp_path / "run", source, tmp_path / "o.parquet")
    args = ["predict", str(tmp_path / "run"), "--file", str(source), "--out", str(tmp_path / "o.jsonl"), "--ray"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError) and "pip install 'caveat[ray]'" in str(result.exception)


def test_bad_options_fail_before_ray_starts(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # so none of these gets as far as importing it
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    with pytest.raises(ConfigError, match=r"actors must be an integer >= 1 \(model copies\). Got 0"):
        score_on_ray(tmp_path / "run", source, tmp_path / "o.jsonl", actors=0)
    with pytest.raises(ConfigError, match=r"choose an output ending in \.jsonl or \.parquet"):
        score_on_ray(tmp_path / "run", source, tmp_path / "o.csv")
    (tmp_path / "done.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"done.jsonl exists and scoring on Ray does not resume: delete it"):
        score_on_ray(tmp_path / "run", source, tmp_path / "done.jsonl")
    args = [
        "predict",
        "run",
        "--file",
        str(source),
        "--out",
        str(tmp_path / "done.jsonl"),
        "--ray",
        "--ray-actors",
        "0",
    ]
    result = CliRunner().invoke(app, args)
    assert flag_message(result.exception).startswith("--ray-actors must be an integer >= 1")


def test_a_bad_run_fails_before_ray_starts(tmp_path):
    ray = pytest.importorskip("ray")
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    with pytest.raises(RunDirError, match="no-run"):
        score_on_ray(tmp_path / "no-run", source, tmp_path / "o.jsonl")
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "method"), [(".jsonl", "deterministic"), (".parquet", "mc_dropout")])
def test_ray_rows_equal_the_streamed_rows_in_input_order(local_ray, served_run, tmp_path, suffix, method):
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    options = {"chunk_size": 8, "top_k": 2, "method": method, "samples": 3, "seed": 5}
    with one_thread():
        want_out = tmp_path / f"want{suffix}"
        sink = JsonlSink(want_out) if suffix == ".jsonl" else ParquetSink(want_out)
        score_stream(Predictor.from_run(served_run), iter_inputs(source), sink, **options)
    got_out = tmp_path / f"got{suffix}"
    assert score_on_ray(served_run, source, got_out, actors=2, **options) == len(TEXTS)
    got, want = _rows(got_out), _rows(want_out)
    assert [r["text"] for r in got] == TEXTS == [r["text"] for r in want]  # the same order
    assert [r["label"] for r in got] == [r["label"] for r in want]
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        assert _floats(g) == pytest.approx(_floats(w), abs=1e-6)
        assert _strings(g) == _strings(w)  # decision, reason, prediction set ...
    if suffix == ".parquet":  # one part per chunk, as the stream writes them
        assert sorted(p.name for p in got_out.iterdir()) == sorted(p.name for p in want_out.iterdir())


@pytest.mark.slow
def test_the_cli_scores_on_ray_and_worker_errors_arrive_as_caveat_errors(local_ray, served_run, tmp_path):
    runner = CliRunner()
    source = _write_jsonl(tmp_path / "in.jsonl", TEXTS)
    out = tmp_path / "preds.jsonl"
    args = ["predict", str(served_run), "--file", str(source), "--out", str(out), "--ray", "--chunk-size", "16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.exception
    assert [r["text"] for r in _read_jsonl(out)] == TEXTS
    assert "does not resume" in str(runner.invoke(app, args).exception)

    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:30]) + '{"txt": "x"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:31: no string field 'text'"):
        score_on_ray(served_run, bad, tmp_path / "bad-out.jsonl", chunk_size=8)
    empty = _write_jsonl(tmp_path / "empty.jsonl", [*TEXTS[:20], " "])
    with pytest.raises(DataError, match=r"input 21 is empty"):
        score_on_ray(served_run, empty, tmp_path / "empty-out.jsonl", chunk_size=8)


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    import pyarrow.parquet as pq

    return [{k: _loaded(v) for k, v in row.items()} for row in pq.read_table(path).to_pylist()]


def _loaded(value):
    """A Parquet cell as the row held it (nested values are stored as JSON strings)."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _flat(value, prefix: str = ""):
    """(path, leaf) of every leaf of a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}/{i}")
    else:
        yield prefix, value


def _floats(row: dict) -> dict:
    return {k: v for k, v in _flat(row) if isinstance(v, float)}


def _strings(row: dict) -> dict:
    return {k: v for k, v in _flat(row) if not isinstance(v, float)}
