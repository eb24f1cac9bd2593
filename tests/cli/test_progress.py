"""Commands say on stderr what they are doing, stdout stays their JSON, and --quiet / CAVEAT_QUIET silence them."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from caveat import progress
from caveat.cli.app import app

runner = CliRunner()
EVERY_STEP = {progress.EVERY_ENV: "0", progress.AFTER_ENV: "0"}  # a line per batch, however short the phase


@pytest.fixture
def run_copy(served_run, tmp_path):
    """The calibrated tiny run, copied: calibrate and evaluate write into it."""
    return shutil.copytree(served_run, tmp_path / "run")


def phase_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("caveat: ")]


def test_calibrate_names_its_passes_on_stderr_and_keeps_stdout_json(run_copy):
    result = runner.invoke(app, ["calibrate", str(run_copy), "--target-risk", "0.2"], env=EVERY_STEP)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fitted_on"] == "calibration"
    lines = phase_lines(result.stderr)
    for split in ("calibration", "train", "validation"):
        named = [line for line in lines if line.startswith(f"caveat: calibrate: predict on {split} ")]
        assert named and "(100%" in named[-1], lines
    assert not progress.is_shown()  # the library is quiet again once the command is over


@pytest.mark.parametrize(("args", "env"), [(["--quiet"], {}), (["-q"], {}), ([], {progress.QUIET_ENV: "1"})])
def test_quiet_flag_and_env_silence_progress(run_copy, args, env):
    result = runner.invoke(app, [*args, "evaluate", str(run_copy), "--data", "test"], env=EVERY_STEP | env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == "test"
    assert phase_lines(result.stderr) == []


def test_evaluate_shows_its_pass_when_not_quiet(run_copy):
    result = runner.invoke(app, ["evaluate", str(run_copy), "--data", "test"], env=EVERY_STEP)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == "test"
    lines = phase_lines(result.stderr)
    assert lines and all(line.startswith("caveat: evaluate: predict on test ") for line in lines), lines
