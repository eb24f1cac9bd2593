"""Shift: identical 'shifted' data reports the in-domain numbers exactly; a planted shift moves them;
labels the run does not know and malformed specs are refused with the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.errors import ConfigError, DataError
from caveat.evaluation.run import evaluate_run
from caveat.models.rundir import open_run
from caveat.robustness.shift import parse_shifts, read_shift, read_shifts
from caveat.types import Task
from tests.fakes import write_jsonl

approx = pytest.approx
SELECTIVE = (
    "ece",
    "ece_adaptive",
    "brier",
    "nll",
    "aurc",
    "error_auroc",
    "accuracy_at_80",
    "accuracy_at_90",
    "accuracy_at_95",
)


@pytest.mark.parametrize("which", [0, 1], ids=["raw", "calibrated"])
def test_identical_shifted_data_reports_the_in_domain_numbers(trained_runs, text_data, which):
    test_file = str(text_data / "test.jsonl")
    result = evaluate_run(trained_runs[which], "test", shift={"same": test_file}, write=False)
    same = result["shift"]["same"]
    assert same["source"] == test_file and same["n"] == result["n"] == 60 and same["skipped"] == 0
    for key in ("accuracy", "macro_f1", "weighted_f1", *SELECTIVE):
        assert same[key] == approx(result[key]), key
    assert same["per_class"] == result["per_class"]
    assert all(v == approx(0.0, abs=1e-12) for v in same["delta"].values())
    scores = {"least_confidence", "entropy", "energy"} | ({"mahalanobis", "knn"} if which else set())
    assert set(same["ood"]) == scores
    for o in same["ood"].values():
        assert o["auroc"] == 0.5 and o["in_domain"] == o["shifted"]
        assert o["in_domain"]["q05"] <= o["in_domain"]["q50"] <= o["in_domain"]["q95"]
    if which:
        for key in ("temperature", *SELECTIVE):
            assert same["calibrated"][key] == approx(result["calibrated"][key]), key
        assert same["conformal"] == approx(result["conformal"]) and same["abstention"] == approx(result["abstention"])
        assert set(same["delta"]) == {"accuracy", "macro_f1", "nll", "ece", "aurc", "calibrated_ece"}
    else:
        assert "calibrated" not in same and "calibrated_ece" not in same["delta"]


def test_a_shifted_distribution_moves_the_numbers(trained_runs, mixed_file):
    result = evaluate_run(trained_runs[1], "test", shift=[f"mixed={mixed_file}"], write=False)
    mixed = result["shift"]["mixed"]
    assert mixed["n"] == 60 and result["accuracy"] - mixed["accuracy"] >= 0.2  # a conflicting keyword confuses it
    assert mixed["delta"]["accuracy"] == approx(mixed["accuracy"] - result["accuracy"])
    assert mixed["delta"]["calibrated_ece"] == approx(mixed["calibrated"]["ece"] - result["calibrated"]["ece"])
    assert mixed["calibrated"]["ece"] > result["calibrated"]["ece"]
    for score in ("least_confidence", "mahalanobis"):  # shifted inputs look more uncertain
        o = mixed["ood"][score]
        assert o["auroc"] > 0.55 and o["shifted"]["mean"] > o["in_domain"]["mean"], score
    assert mixed["ood"]["mahalanobis"]["auroc"] > 0.7


def test_cli_writes_shift_into_metrics_json(trained_runs, text_data, mixed_file, tmp_path):
    run = shutil.copytree(trained_runs[0], tmp_path / "run")
    args = [
        "evaluate",
        str(run),
        "--data",
        "test",
        "--shift",
        f"same={text_data / 'test.jsonl'}",
        "--shift",
        f"mixed={mixed_file}",
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["shift"]) == ["same", "mixed"]
    assert json.loads((run / "metrics.json").read_text())["test"]["shift"] == out["shift"]
    table = CliRunner().invoke(app, [*args, "--format", "table"], catch_exceptions=False)
    assert table.exit_code == 0 and "shift (in-domain: test)" in table.stdout and "mixed" in table.stdout


def test_the_run_format_reads_other_files_and_extensions_win(trained_runs, tmp_path):
    run = open_run(trained_runs[0])
    run.config = run.config.model_copy(update={"data": run.config.data.model_copy(update={"format": "label-sentence"})})
    reviews = tmp_path / "reviews.all"  # like CR's custrev.all: "LABEL sentence" per line
    reviews.write_text(
        "first the alpha card\nsecond \nthird my gamma phone now\n", encoding="utf-8"
    )  # CR has label-only lines
    split = read_shift(run, "reviews", str(reviews))
    assert [(ex.label, ex.text) for ex in split.examples] == [
        ("first", "the alpha card"),
        ("third", "my gamma phone now"),
    ]
    assert split.skipped == 1
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"text": "the beta road", "label": "second"}])
    assert [ex.label for ex in read_shift(run, "rows", str(rows)).examples] == ["second"]


def test_unknown_labels_are_named_with_the_fix(trained_runs, tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"text": "the alpha card", "label": "first"},
            {"text": "x", "label": "zeroth"},
            {"text": "y", "label": "fourth"},
            {"text": "z", "label": "zeroth"},
        ],
    )
    with pytest.raises(
        DataError,
        match=r"shift bad=.*bad.jsonl: labels 'fourth' \(1x\), 'zeroth' \(2x\) are not labels "
        r"of this run, which predicts 'first', 'second', 'third'. Fix: relabel the file",
    ):
        evaluate_run(trained_runs[0], "test", shift=[f"bad={bad}"], write=False)
    assert not (trained_runs[0] / "metrics.json").exists()  # refused before anything ran or was written


def test_bad_specs(trained_runs, text_data, tmp_path):
    test_file = str(text_data / "test.jsonl")
    with pytest.raises(ConfigError, match=r"shift 'cr' is not NAME=FILE; write e.g. cr="):
        parse_shifts(["cr"])
    with pytest.raises(ConfigError, match="is not NAME=FILE"):
        parse_shifts([f"={test_file}"])
    with pytest.raises(ConfigError, match="shift name 'a' is given twice; give each shifted set its own name"):
        parse_shifts([f"a={test_file}", f"a={test_file}"])
    with pytest.raises(ConfigError, match=r"shift cr=nowhere.all: no such file; give a labelled file"):
        parse_shifts(["cr=nowhere.all"])
    assert parse_shifts([f" a = {test_file}"]) == {"a": test_file} == parse_shifts({"a": test_file})
    with pytest.raises(DataError, match=r"cannot tell the data format from the extension '.all'"):
        (tmp_path / "x.all").write_text("first the alpha card\n")
        read_shifts(open_run(trained_runs[0]), [f"x={tmp_path / 'x.all'}"])  # a jsonl run: set data.format
    ner = SimpleNamespace(task=Task.TOKEN_CLASSIFICATION, path=Path("runs/ner"))
    with pytest.raises(
        ConfigError, match="shift is for text-classification runs; runs/ner is a token-classification run"
    ):
        read_shifts(ner, [f"a={test_file}"])
    result = CliRunner().invoke(app, ["evaluate", str(trained_runs[0]), "--shift", "cr"])
    assert result.exit_code != 0 and "is not NAME=FILE" in str(result.exception)
