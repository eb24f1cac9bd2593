"""caveat demo end to end on the shipped sample intents (a tiny backbone stands in for MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from caveat.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def test_demo_trains_calibrates_evaluates_and_writes_the_report(tiny_backbone, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--data-dir",
            str(ROOT / "examples" / "data"),
            "--epochs",
            "2",
            "--set",
            f"model.name_or_path={tiny_backbone}",
            "--set",
            "train.lr=3e-3",
            "--set",
            "train.head_lr=3e-3",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for figure in ("test accuracy", "ECE before", "out-of-scope AUROC", "errors on answered", "report:"):
        assert figure in result.stdout
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    info = json.loads((out / "caveat.json").read_text())
    assert len(info["labels"]) == 20
    assert info["calibration"]["risk"]["ood_rate"] == 0.1 and info["calibration"]["risk_ood_calibration"]["n"] == 60
    assert info["calibration"]["risk"]["summary"] in result.stdout  # the promise (or what can be met) in words
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["n"] == 300 and "oos" in metrics["decisions"]


def test_demo_names_the_data_sets_it_knows(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--data", "imagenet"])
    assert result.exit_code != 0 and "choose one of: sample, clinc150" in str(result.exception)
