"""caveat compare on two tiny runs: one row per run, the right columns, JSON and markdown written,
attacks reused from metrics.json only when their settings match."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.robustness.compare import AttackSettings, compare_runs, to_markdown, training_cost, write_compare

approx = pytest.approx


@pytest.fixture
def two_runs(trained_runs, tmp_path):
    """Copies (compare writes its attacks into each run's metrics.json): erm and fgm."""
    return [shutil.copytree(trained_runs[i], tmp_path / name) for i, name in ((0, "erm"), (2, "fgm"))]


def test_compare_two_runs(two_runs, text_data, mixed_file, tiny_backbone, tmp_path, monkeypatch):
    args = ["compare", *map(str, two_runs), "--data", "test", "--attack", "greedy", "--max-examples", "8",
            "--max-change", "0.3", "--min-similarity", "0.5", "--similarity-model", str(tiny_backbone),
            "--shift", f"same={text_data / 'test.jsonl'}", "--shift", f"mixed={mixed_file}"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert (tmp_path / "out" / "compare.md").read_text() == result.stdout == to_markdown(saved)
    assert saved["columns"] == ["run", "objective", "accuracy", "ECE", "after greedy", "same accuracy", "same ECE",
                                "mixed accuracy", "mixed ECE", "s/step"]
    assert [row[:2] for row in saved["table"]] == [["erm", "erm"], ["fgm", "fgm"]]
    assert all(len(row) == len(saved["columns"]) for row in saved["table"])
    lines = result.stdout.splitlines()
    assert lines[2].startswith("| run | objective | accuracy | ECE | after greedy |") and len(lines[4:6]) == 2
    for run, row in zip(two_runs, saved["rows"]):
        evaluated = evaluate_run(run, "test", write=False)
        assert row["accuracy"] == approx(evaluated["accuracy"]) and row["ece"] == approx(evaluated["ece"])
        assert row["shift"]["same"]["accuracy"] == approx(row["accuracy"])  # identical data, identical numbers
        assert row["shift"]["same"]["ece"] == approx(row["ece"]) and row["shift"]["same"]["msp_auroc"] == 0.5
        attack = json.loads((run / "metrics.json").read_text())["attack"]["test"]["greedy"]  # merged as caveat attack does
        assert row["attack"]["greedy"]["after_attack_accuracy"] == attack["after_attack_accuracy"]
        assert row["attack"]["greedy"]["n"] == 8 and row["attack"]["greedy"]["reused"] is False
        training = json.loads((run / "caveat.json").read_text())["training"]
        assert row["training"]["seconds_per_step"] == approx(training["seconds"] / training["steps"])
    assert saved["table"][0][2] == saved["rows"][0]["accuracy"] and saved["table"][1][4] == saved["rows"][1]["attack"]["greedy"]["after_attack_accuracy"]
    assert any("first 8 examples" in note for note in saved["notes"])

    # the same settings again: the saved attacks are read, not re-run; the default --out is ./compare
    monkeypatch.chdir(tmp_path)
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    reread = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert [r["attack"]["greedy"]["reused"] for r in reread["rows"]] == [True, True]
    assert reread["table"] == saved["table"]
    other = compare_runs(two_runs[:1], attacks="greedy", settings=AttackSettings(max_examples=6, max_change=0.3, min_similarity=0.5),
                         similarity_model=str(tiny_backbone))
    assert other["rows"][0]["attack"]["greedy"]["reused"] is False and other["rows"][0]["attack"]["greedy"]["n"] == 6
    assert other["columns"] == ["run", "objective", "accuracy", "ECE", "after greedy", "s/step"]


def test_calibrated_runs_add_calibrated_ece_columns(trained_runs, text_data, tmp_path):
    result = compare_runs([trained_runs[0], trained_runs[1]], shift=[f"same={text_data / 'test.jsonl'}"])
    assert result["columns"] == ["run", "objective", "accuracy", "ECE", "ECE (calibrated)", "same accuracy", "same ECE",
                                 "same ECE (calibrated)", "s/step"]
    assert result["table"][0][4] is None and result["table"][1][4] == result["table"][1][7]  # uncalibrated: empty
    json_path, md_path = write_compare(result, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"][1]["calibrated"] is True and "| — |" in md_path.read_text()


def test_training_cost_and_markdown_cells():
    assert training_cost(SimpleNamespace(info={"training": {"seconds": 10.0, "steps": 4, "processes": 1}})) == {
        "seconds": 10.0, "steps": 4, "processes": 1, "seconds_per_step": 2.5}
    assert training_cost(SimpleNamespace(info={}))["seconds_per_step"] is None
    md = to_markdown({"data": "test", "columns": ["run", "objective", "s/step"], "table": [["a|b", "erm", None]], "notes": ["n"]})
    assert "| a\\|b | erm | — |" in md and md.endswith("- n\n")


def test_bad_input(trained_runs, tmp_path):
    with pytest.raises(ConfigError, match="compare needs at least one run directory"):
        compare_runs([])
    with pytest.raises(ConfigError, match=r"max_change must be in \(0, 1\]"):
        AttackSettings(max_change=0.0)
    with pytest.raises(ConfigError, match="max_examples must be >= 1"):
        AttackSettings(max_examples=0)
    with pytest.raises(ConfigError, match="unknown attack 'bogus'"):
        compare_runs([trained_runs[0]], attacks="bogus")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--out .*file is a file; give a folder for compare.json and compare.md"):
        write_compare({}, tmp_path / "file")
    result = CliRunner().invoke(app, ["compare", str(trained_runs[0]), "--shift", "cr"])
    assert result.exit_code != 0 and "is not NAME=FILE" in str(result.exception)
