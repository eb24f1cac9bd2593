"""Runs shared by the report tests: one tiny text run (a calibrated copy and an uncalibrated one), one
tiny NER run, a copy of the calibrated run with saved explanation figures, and their reports; built
once for the package."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caveat.calibration.run import calibrate_run
from caveat.cli.app import app
from caveat.config import load_config
from caveat.evaluation.run import evaluate_run
from caveat.report import Report, build_report, write_report
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides
from tests.fakes import planted_texts, write_jsonl

# No keyword, so the model cannot know their label: they land among the most uncertain inputs.
PLANTED = [
    {"text": f"<script>alert({i})</script> the card {word}", "label": label}
    for i, (word, label) in enumerate([("now", "first"), ("today", "second"), ("city", "third")])
]
# What `caveat evaluate --explain-faithfulness` runs, made small: 4 texts, two cheap methods.
EXPLAIN = {"methods": ["occlusion", "lime"], "max_examples": 4, "options": {"lime": {"samples": 50}}}
OOS = [
    "zebra xylophone quartz",
    "what is the capital of peru",
    "qqq vvv www",
    "my phone is broken",
    "the cat and the dog",
]


@pytest.fixture(scope="package")
def report_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report-data")
    write_jsonl(folder / "train.jsonl", planted_texts(192, seed=1))
    write_jsonl(folder / "validation.jsonl", planted_texts(60, seed=2))
    write_jsonl(folder / "test.jsonl", planted_texts(60, seed=3) + PLANTED)
    (folder / "oos.txt").write_text("\n".join(OOS) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="package")
def oos_file(report_data) -> Path:
    return report_data / "oos.txt"


@pytest.fixture(scope="package")
def text_runs(tiny_backbone, report_data, tmp_path_factory) -> tuple[Path, Path]:
    """(calibrated, uncalibrated): one training (3 epochs: good but not perfect), copied before calibrating."""
    root = tmp_path_factory.mktemp("report-runs")
    calibrated, uncalibrated = root / "calibrated", root / "uncalibrated"
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, report_data, epochs=3)), calibrated, progress=False
    ).fit()
    shutil.copytree(calibrated, uncalibrated)
    calibrate_run(calibrated, target_risk=0.2, delta=0.2, alpha=0.2)
    return calibrated, uncalibrated


@pytest.fixture(scope="package")
def calibrated_report(text_runs, oos_file) -> tuple[Report, Path]:
    """The report of the calibrated run with an OOD file, written by the CLI: (Report read back from JSON, HTML
    path)."""
    run = text_runs[0]
    result = CliRunner().invoke(app, ["report", str(run), "--ood", str(oos_file)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html = Path(result.stdout.strip().splitlines()[-1])
    assert html == run / "report.html"
    return Report.model_validate_json((run / "report.json").read_text(encoding="utf-8")), html


@pytest.fixture(scope="package")
def uncalibrated_report(text_runs, oos_file) -> tuple[Report, Path]:
    report = build_report(text_runs[1], ood=[str(oos_file)])
    return report, write_report(report, text_runs[1] / "report.html")


@pytest.fixture(scope="package")
def ner_run(tiny_backbone, ner_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("report-ner") / "run"
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, ner_data, "token-classification", epochs=3)),
        run,
        progress=False,
    ).fit()
    return run


@pytest.fixture(scope="package")
def ner_reports(ner_run) -> tuple[Report, Report, Path]:
    """(before calibration, after calibration, HTML of the latter)."""
    before = build_report(ner_run)
    with warnings.catch_warnings():  # a 3-epoch model is overconfident: its temperature sits on the search bound
        warnings.filterwarnings("ignore", "fitted temperature", UserWarning)
        calibrate_run(ner_run, target_risk=0.3, delta=0.1)
    after = build_report(ner_run)
    return before, after, write_report(after, ner_run / "report.html")


@pytest.fixture(scope="package")
def explained_report(text_runs, tmp_path_factory) -> tuple[Report, Path]:
    """A copy of the calibrated run evaluated with explanations on a labelled file of the 3 planted
    ``<script>`` texts and one plain text (all 4 explained), and its report on that file: (Report, HTML path)."""
    run = shutil.copytree(text_runs[0], tmp_path_factory.mktemp("explained-report") / "run")
    data = str(write_jsonl(run.parent / "planted.jsonl", PLANTED + planted_texts(1, seed=4)))
    evaluate_run(run, data, explain=EXPLAIN)
    report = build_report(run, data=data)
    return report, write_report(report, run / "report.html")
