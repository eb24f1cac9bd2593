"""The input log (``--log-inputs``): one JSON line per served input with what was served for it, rotated by
size, whole under concurrent requests, never holding a header or the key; ``read_logged_texts`` reads it."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from caveat.calibration import Calibration
from caveat.data.readers.logged import read_logged_texts
from caveat.errors import ConfigError, DataError
from caveat.models.rundir import open_run
from caveat.service import ServiceSettings, create_app
from caveat.service.inputlog import InputLog, log_entries
from tests.service.conftest import close, serving

KEY = "k3y-that-must-never-be-logged"


def entries(path: Path) -> list[dict]:
    """Every line of one log file as JSON (each line whole: the file ends with a newline)."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), text[-200:]
    return [json.loads(line) for line in text.split("\n")[:-1]]


def rotated(path: Path, backups: int) -> list[Path]:
    """``path``'s files, oldest first: PATH.<backups> .. PATH.1, PATH (those that exist)."""
    files = [path.with_name(f"{path.name}.{i}") for i in range(backups, 0, -1)] + [path]
    return [f for f in files if f.exists()]


def test_each_input_is_one_line_with_its_scores_and_nothing_of_the_request(served_run, tmp_path):
    path = tmp_path / "logs" / "inputs.jsonl"  # the folder is created
    texts = ["the alpha card", "my beta parcel\nand a second line", "gamma ünïcode \u2028 separator"]
    headers = {"X-API-Key": KEY, "User-Agent": "agent-smith", "X-Forwarded-For": "10.9.8.7"}
    start = datetime.now(timezone.utc)
    with serving(served_run, api_key=KEY, log_inputs=path) as c:
        response = c.post("/v1/predict", json={"texts": texts, "k": 1}, headers=headers)
        assert response.status_code == 200, response.json()
        assert c.post("/v1/predict", json={"texts": ["refused alpha"]}).status_code == 401  # not served: not logged
        assert c.post("/v1/explain", json={"text": "explained alpha"}, headers=headers).status_code == 200
    rows = response.json()["predictions"]
    raw = path.read_text(encoding="utf-8")
    for secret in (KEY, "agent-smith", "10.9.8.7", "X-API-Key", "refused alpha", "explained alpha"):
        assert secret.lower() not in raw.lower()
    logged = entries(path)
    assert [e["text"] for e in logged] == texts  # one line each, a newline inside a text escaped
    score = Calibration.from_run(open_run(served_run)).score
    for e, row in zip(logged, rows):
        assert list(e) == ["time", "text", "label", "score", "uncertainty", "decision"]
        assert (e["label"], e["decision"], e["score"]) == (row["label"], row["decision"], score)
        assert e["uncertainty"] == pytest.approx(row["uncertainty"][score], abs=1e-12)
        served = datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
        assert e["time"].endswith("Z") and start - timedelta(seconds=1) <= served <= datetime.now(timezone.utc)
    assert read_logged_texts(path) == texts


def test_the_log_rotates_at_max_bytes_and_keeps_n_backups(served_run, tmp_path):
    path = tmp_path / "inputs.jsonl"
    sent = [f"alpha request number {i:02d}" for i in range(24)]
    with serving(served_run, log_inputs=path, log_max_bytes=400, log_backups=2) as c:
        for text in sent:  # one at a time: the order of the lines is the order sent
            assert c.post("/v1/predict", json={"texts": [text]}).status_code == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs.jsonl", "inputs.jsonl.1", "inputs.jsonl.2"]
    files = rotated(path, 2)
    assert all(0 < f.stat().st_size <= 400 for f in files)
    kept = [text for f in files for text in read_logged_texts(f)]
    assert 3 <= len(kept) < len(sent) and kept == sent[-len(kept) :]  # the newest lines, in order; the oldest gone


def test_concurrent_requests_give_exactly_one_whole_line_per_input(served_run, tmp_path):
    path = tmp_path / "inputs.jsonl"
    words = ("alpha", "beta", "gamma")
    requests = [
        [f"{words[(i + j) % 3]} {i}-{j} {'house ' * ((7 * i + j) % 40)}" for j in range(1 + i % 3)] for i in range(24)
    ]
    gate = threading.Barrier(len(requests))
    with serving(served_run, log_inputs=path, log_max_bytes=3000, log_backups=100, max_wait_ms=20) as c:

        def ask(texts):
            gate.wait()
            response = c.post("/v1/predict", json={"texts": texts})
            assert response.status_code == 200, response.json()
            return response.json()["predictions"]

        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(ask, requests))
    files = rotated(path, 100)
    assert len(files) > 1  # rotated while the requests were in flight
    logged = [e for f in files for e in entries(f)]
    served = {text: row for texts, rows in zip(requests, answers) for text, row in zip(texts, rows)}
    assert sorted(e["text"] for e in logged) == sorted(served)  # exactly one line per input
    for e in logged:
        assert (e["label"], e["decision"]) == (served[e["text"]]["label"], served[e["text"]]["decision"])
    position = {e["text"]: i for i, e in enumerate(logged)}
    for texts in requests:  # a request's lines are consecutive and in its order: never interleaved
        first = position[texts[0]]
        assert [position[t] for t in texts] == list(range(first, first + len(texts)))


def test_ner_lines_hold_the_text_and_the_spans_scores(calibrated_ner_run, tmp_path):
    path = tmp_path / "ner.jsonl"
    with serving(calibrated_ner_run, log_inputs=path) as c:
        by_tokens = c.post("/v1/predict", json={"tokens": [["the", "bob", "smith", "went", "to", "rome"]]}).json()
        by_text = c.post("/v1/predict", json={"texts": ["alice smith went to paris"]}).json()
    rows = by_tokens["predictions"] + by_text["predictions"]
    logged = entries(path)
    assert [e["text"] for e in logged] == ["the bob smith went to rome", "alice smith went to paris"]
    for e, row in zip(logged, rows):
        assert list(e) == ["time", "text", "spans"] and row["spans"]
        assert close(e["spans"], [{k: v for k, v in span.items() if k != "reason"} for span in row["spans"]])
        assert all({"confidence", "decision", "probability", "start", "end", "label"} <= set(s) for s in e["spans"])


def test_a_log_that_cannot_be_opened_stops_the_start_up(served_run, tmp_path):
    with pytest.raises(ConfigError, match=r"log_inputs='.*' cannot be opened for appending .*writable file"):
        create_app(ServiceSettings.from_env({}, run_dir=served_run, log_inputs=tmp_path))  # a folder


def test_a_line_that_cannot_be_written_is_counted_not_echoed(tmp_path, caplog, capsys):
    failures = []
    log = InputLog(tmp_path / "inputs.jsonl", max_bytes=10_000, backups=1, on_error=lambda: failures.append(1))
    rows = [{"text": "private \udc80 text", "label": "a"}, {"text": "fine", "label": "b"}]  # a lone surrogate
    with caplog.at_level(logging.ERROR, logger="caveat.service.inputlog"):
        log.start().write(log_entries(rows, score=None))
        log.close()
    assert failures == [1] and "could not write a line to the input log" in caplog.text
    assert "private" not in caplog.text + capsys.readouterr().err  # the user's text is not copied to the console
    assert read_logged_texts(tmp_path / "inputs.jsonl") == ["fine"]  # the writer keeps going


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / "inputs.jsonl"
    log = InputLog(path, max_bytes=50, backups=3).start()
    log.write(log_entries([{"text": f"text {i} " + "x" * 60, "label": "a"} for i in range(3)], score=None))
    log.close()
    assert [read_logged_texts(f) for f in rotated(path, 3)] == [[f"text {i} " + "x" * 60] for i in range(3)]


def test_read_logged_texts_reads_only_the_file_given(tmp_path):
    path = tmp_path / "inputs.jsonl"
    path.write_text('{"time": "t", "text": "newest", "label": "a"}\n{"text": "two\\nlines"}\n', encoding="utf-8")
    path.with_name("inputs.jsonl.1").write_text('{"text": "older"}\n', encoding="utf-8")
    assert read_logged_texts(path) == ["newest", "two\nlines"]
    assert read_logged_texts(str(path.with_name("inputs.jsonl.1"))) == ["older"]
    (tmp_path / "empty.jsonl").write_text("")
    assert read_logged_texts(tmp_path / "empty.jsonl") == []  # just rotated: no line yet


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"text": "a"}\n{"text": "cut sh', r"inputs\.jsonl:2: malformed JSON"),
        ('{"text": "a"}\n\n{"text": "b"}\n', r"inputs\.jsonl:2: empty line"),
        ('{"text": "a"}\n{"label": "x"}\n', r"inputs\.jsonl:2: no string field 'text' \(present: 'label'\)"),
        ('["a"]\n', r"inputs\.jsonl:1: no string field 'text' \(present: list\)"),
        ('{"text": 3}\n', r"inputs\.jsonl:1: no string field 'text'"),
    ],
)
def test_read_logged_texts_names_the_file_and_line_of_a_bad_line(tmp_path, content, match):
    (tmp_path / "inputs.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match + r".*caveat serve --log-inputs"):
        read_logged_texts(tmp_path / "inputs.jsonl")


def test_read_logged_texts_of_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.jsonl: file not found"):
        read_logged_texts(tmp_path / "nothing.jsonl")
