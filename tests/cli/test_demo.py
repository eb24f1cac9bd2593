"""caveat demo end to end on the shipped sample intents (a tiny backbone stands in for MiniLM)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from typer.testing import CliRunner

from caveat.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "data"


def _make_sample():
    """examples/data/make_sample.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    for figure in ("test accuracy", "ECE before", "AUROC", "errors on answered", "mistakes not answered", "report:"):
        assert figure in result.stdout
    steps = result.stdout[result.stdout.index("next steps:") :]
    assert f"1. open the report: {(out / 'report.html').resolve()}" in steps
    assert f"2. serve the model with its abstention policy: caveat serve {out}" in steps
    assert "3. train on your own CSV: caveat train --train my.csv --text-field text --label-field label" in steps
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    info = json.loads((out / "caveat.json").read_text())
    assert len(info["labels"]) == 20
    assert info["calibration"]["risk"]["ood_rate"] == 0.1 and info["calibration"]["risk_ood_calibration"]["n"] == 200
    assert info["calibration"]["risk"]["n_calibration"] == 1600  # intents_calibration.jsonl, not half of validation
    assert info["calibration"]["risk"]["summary"] in result.stdout  # the promise (or what can be met) in words
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["n"] == 300 and "oos" in metrics["decisions"]


def test_demo_names_the_data_sets_it_knows(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--data", "imagenet"])
    assert result.exit_code != 0 and "choose one of: sample, clinc150" in str(result.exception)


def test_the_sample_generator_is_seeded_and_wrote_the_shipped_files(tmp_path):
    make_sample = _make_sample()
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_sample.main(a, seed=13)
    make_sample.main(b, seed=13)
    make_sample.main(c, seed=14)
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 9 and names == sorted(p.name for p in b.iterdir())
    for name in names:  # same seed, same bytes; and what is shipped is what seed 13 writes
        assert (a / name).read_bytes() == (b / name).read_bytes() == (SAMPLE / name).read_bytes()
    assert (a / "intents_test.jsonl").read_text() != (c / "intents_test.jsonl").read_text()
    train = {json.loads(line)["text"] for line in (a / "intents_train.jsonl").read_text().splitlines()}
    test = [json.loads(line) for line in (a / "intents_test.jsonl").read_text().splitlines()]
    assert len(train) == 800 and len(test) == 300 and not train & {r["text"] for r in test}
