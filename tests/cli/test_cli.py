"""The CLI end to end on a tiny model: train, predict, evaluate, tune; errors are one clear line."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from caveat.cli.app import app
from tests.conftest import tiny_overrides

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return result


def sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def test_train_predict_evaluate_end_to_end(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "--out", str(run), "--no-progress", *sets(tiny_overrides(tiny_backbone, text_data)))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["validation"]["accuracy"] >= 0.9 and summary["test"]["accuracy"] >= 0.9

    result = invoke("predict", str(run), "the alpha card", "--top-k", "2")
    row = json.loads(result.stdout)
    assert row["label"] == "first" and len(row["probabilities"]) == 2
    assert row["probability"] == max(row["probabilities"].values())

    result = invoke("predict", str(run), input="beta now\ngamma please\n")  # stdin, JSON lines
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["second", "third"]

    result = invoke("evaluate", str(run), "--data", "test")
    metrics = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "weighted_f1", "nll", "n", "per_class"} <= set(metrics)
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics

    result = invoke("evaluate", str(run), "--data", str(text_data / "validation.jsonl"), "--format", "table")
    assert "accuracy" in result.stdout and "per class" in result.stdout


def test_train_without_config_file_from_flags(tiny_backbone, text_data, tmp_path):
    result = invoke(
        "train",
        "--task",
        "text-classification",
        "--train",
        str(text_data / "train.jsonl"),
        "--validation",
        str(text_data / "validation.jsonl"),
        "--text-field",
        "text",
        "--label-field",
        "label",
        "--model",
        str(tiny_backbone),
        "--out",
        str(tmp_path / "mine"),
        "--no-progress",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=32",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training"]["steps"] == 6


def test_ner_cli_predicts_spans(tiny_backbone, ner_data, tmp_path):
    run = tmp_path / "ner"
    overrides = tiny_overrides(tiny_backbone, ner_data, "token-classification", epochs=10, objective="fgm")
    assert invoke("train", "--out", str(run), "--no-progress", *sets(overrides)).exit_code == 0
    row = json.loads(invoke("predict", str(run), "the bob smith went to rome").stdout)
    assert [(s["text"], s["label"]) for s in row["spans"]] == [("bob smith", "PER"), ("rome", "LOC")]
    assert json.loads(invoke("evaluate", str(run)).stdout)["f1"] >= 0.9


def test_tune_keeps_the_best_alpha(tiny_backbone, text_data, tmp_path):
    overrides = tiny_overrides(tiny_backbone, text_data, epochs=2, objective="fgm")
    result = invoke("tune", "--alphas", "0,1", "--out", str(tmp_path / "t"), "--no-progress", *sets(overrides))
    table = json.loads(result.stdout)
    assert table["key"] == "train.alpha" and [r["value"] for r in table["rows"]] == [0.0, 1.0]
    best = max(table["rows"], key=lambda r: r["validation"])
    assert table["best_value"] == best["value"] and table["criterion"] == "validation"
    assert (tmp_path / "t" / "model" / "head.safetensors").is_file() and (tmp_path / "t" / "sweep.md").is_file()


def test_user_errors_are_one_clear_line(tmp_path):
    cmd = [sys.executable, "-m", "caveat", "train", "--set", "train.lrr=1", "--out", str(tmp_path / "x")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown key 'train.lrr'" in proc.stderr and "train.lr" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "caveat", "predict", str(tmp_path / "nope"), "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "is not a caveat run" in proc.stderr and "Traceback" not in proc.stderr


def test_library_errors_are_rendered_with_flag_names(served_run, tmp_path):
    """The library names its arguments (``data``, ``top_k``); the CLI shows the flags (``--data``, ``--top-k``)."""
    from caveat.cli.app import flag_message
    from caveat.errors import ConfigError

    proc = subprocess.run(
        [sys.executable, "-m", "caveat", "evaluate", str(served_run), "--data", "nowhere.txt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--data='nowhere.txt' is neither a file nor a split name" in proc.stderr
    err = ConfigError("{top_k} must be >= 0; {explain} too", fields=("top_k", "explain"))
    assert str(err) == "top_k must be >= 0; explain too"
    assert flag_message(err) == "--top-k must be >= 0; --explain-faithfulness too"
