"""caveat --version and caveat info RUN: what a run is, read from caveat.json, as text (100 columns) or JSON."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from caveat._version import __version__
from caveat.cli.app import app
from caveat.cli.info import wrap
from caveat.errors import ConfigError, RunDirError

runner = CliRunner()


def _words(text: str) -> str:
    return " ".join(text.split())


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"caveat {__version__}\n"


def test_info_of_a_calibrated_run_as_json_and_text(served_run, tiny_backbone):
    result = runner.invoke(app, ["info", str(served_run), "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    stored = json.loads((served_run / "caveat.json").read_text())
    assert info["task"] == "text-classification"
    assert info["labels"] == {"count": 3, "first": ["first", "second", "third"]}
    assert info["backbone"]["name"] == str(tiny_backbone)
    assert {k: v["n"] for k, v in info["data"]["splits"].items()} == {
        "train": 192,
        "validation": 30,
        "calibration": 30,
        "test": 60,
    }
    training = info["training"]
    assert training["objective"] == "erm" and training["epochs"] == 6 and training["seconds"] >= 0
    assert training["best_validation"]["metric"] == "accuracy"
    assert training["best_validation"]["value"] == stored["training"]["best_validation"]
    cal = info["calibration"]
    assert cal["temperature"] == stored["calibration"]["temperature"]
    assert cal["sets"]["method"] == "lac" and cal["sets"]["level"] == pytest.approx(0.8)  # alpha=0.2
    assert cal["ood"]["threshold"] == stored["calibration"]["ood"]["threshold"] and cal["ood"]["keeps"] == 0.95
    assert cal["abstention"]["guarantee"] == stored["calibration"]["risk"]["summary"]
    assert cal["abstention"]["target_risk"] == 0.2 and "shift" not in cal
    assert info["versions"]["caveat"] == __version__

    text = runner.invoke(app, ["info", str(served_run)])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert max(map(len, lines)) <= 100 and all(line == line.rstrip() for line in lines)
    page = _words(text.stdout)
    for expected in (
        "task text-classification",
        "labels 3: first, second, third",
        "training erm, 6 epochs",
        "best validation accuracy",
        "lac, level 80%",
        f"temperature {cal['temperature']:.4g}",
        "out-of-scope check mahalanobis",
        _words(stored["calibration"]["risk"]["summary"]),
        f"caveat {__version__}",
    ):
        assert expected in page, expected
    assert "test 60" in page and "calibration 30" in page


def test_info_names_the_packaged_backbone_and_a_target_calibration(served_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(served_run, run)
    stored = json.loads((run / "caveat.json").read_text())
    stored["config"]["model"]["name_or_path"] = "default"
    summary = stored["calibration"]["risk"].pop("summary")  # a run calibrated before the summary was stored
    stored["calibration"]["shift"] = {
        "target": "traffic.jsonl",
        "n_target": 60,
        "effective_sample_size": 21.5,
        "summary": "calibrated for 60 unlabelled target texts: the 30 calibration examples are worth 22",
    }
    (run / "caveat.json").write_text(json.dumps(stored))

    info = json.loads(runner.invoke(app, ["info", str(run), "--format", "json"]).stdout)
    assert info["backbone"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "name_or_path": "default"}
    assert info["calibration"]["abstention"]["guarantee"] == summary  # rebuilt from the stored state
    assert info["calibration"]["shift"]["target"] == "traffic.jsonl"
    page = _words(runner.invoke(app, ["info", str(run)]).stdout)
    assert "backbone sentence-transformers/all-MiniLM-L6-v2 (packaged: model.name_or_path=default)" in page
    assert "target domain calibrated for 60 unlabelled target texts" in page

    stored["config"]["model"]["name_or_path"] = "default-lm"
    (run / "caveat.json").write_text(json.dumps(stored))
    info = json.loads(runner.invoke(app, ["info", str(run), "--format", "json"]).stdout)
    assert info["backbone"]["name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_info_of_an_uncalibrated_ner_run(ner_run):
    info = json.loads(runner.invoke(app, ["info", str(ner_run), "--format", "json"]).stdout)
    assert info["task"] == "token-classification" and info["calibration"] is None
    assert info["training"]["best_validation"]["metric"] == "f1"
    page = _words(runner.invoke(app, ["info", str(ner_run)]).stdout)
    assert f"calibration none: add temperature, prediction sets and abstention with caveat calibrate {ner_run}" in page


def test_info_of_a_calibrated_ner_run(calibrated_ner_run):
    info = json.loads(runner.invoke(app, ["info", str(calibrated_ner_run), "--format", "json"]).stdout)
    stored = json.loads((calibrated_ner_run / "caveat.json").read_text())["calibration"]
    cal = info["calibration"]
    assert cal["spans"]["precision"] == stored["span_precision"] and "sets" not in cal and "ood" not in cal
    assert cal["abstention"]["guarantee"] == stored["risk"]["summary"]
    result = runner.invoke(app, ["info", str(calibrated_ner_run)])
    assert result.exit_code == 0, result.exception
    page = _words(result.stdout)
    assert "spans confidence by" in page and "span ECE" in page and _words(stored["risk"]["summary"]) in page


def test_info_refuses_a_bad_format_and_a_path_that_is_not_a_run(served_run, tmp_path):
    result = runner.invoke(app, ["info", str(served_run), "--format", "yaml"])
    assert isinstance(result.exception, ConfigError) and "format='yaml'" in str(result.exception)
    result = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert isinstance(result.exception, RunDirError) and "does not exist" in str(result.exception)


def test_wrap_breaks_between_words_and_paths_after_a_slash():
    assert wrap("add it with caveat calibrate /runs/a", 20) == ["add it with caveat", "calibrate /runs/a"]
    assert wrap("see /a/very/long/path/to/a/file.jsonl", 14) == ["see /a/very/", "long/path/to/", "a/file.jsonl"]
    assert wrap("train   192  x", 40) == ["train   192  x"]  # alignment kept
    assert all(len(line) <= 5 for line in wrap("abcdefghijkl", 5))
