"""``caveat evaluate --adversarial NAME=FILE``: a human-made adversarial set is scored like a shifted set, under its
own section, with what the calibrated policy answers on it; its input is checked as --shift's is."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError, DataError
from caveat.evaluation.run import evaluate_run
from tests.fakes import planted_texts

runner = CliRunner()


@pytest.fixture
def run(served_run, tmp_path):
    """A copy of the calibrated tiny run (evaluate writes metrics.json)."""
    return shutil.copytree(served_run, tmp_path / "run")


@pytest.fixture
def adversarial_file(tmp_path):
    """Labelled texts written to mislead: each planted text gets a second, conflicting keyword twice, so the
    keyword that decides its label is outnumbered."""
    rows = []
    for i, row in enumerate(planted_texts(30, seed=11)):
        other = [w for w in ("alpha", "beta", "gamma") if w not in row["text"].split()][i % 2]
        rows.append(json.dumps({"text": f"{other} {row['text']} {other}", "label": row["label"]}))
    path = tmp_path / "adversarial.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_an_adversarial_set_is_scored_with_the_policy(run, adversarial_file):
    args = ["evaluate", str(run), "--data", "test", "--adversarial", f"tricky={adversarial_file}"]
    result = runner.invoke(app, [*args, "--shift", f"same={adversarial_file}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    tricky = out["adversarial"]["tricky"]
    # the shift code path, under its own section: the same file as a shifted set gives the same figures
    assert tricky == out["shift"]["same"]
    assert tricky["n"] == 30 and tricky["source"] == str(adversarial_file)
    assert 0 <= tricky["accuracy"] < out["accuracy"]  # it misleads the model
    assert set(tricky["calibrated"]) >= {"ece", "temperature"}
    answered, error = tricky["abstention"]["coverage"], tricky["abstention"]["risk"]
    assert 0 <= answered <= 1 and (error is None or 0 <= error <= 1)
    decisions = tricky["decisions"]["in_scope"]
    assert decisions["answer"] == round(answered * 30)  # share answered: of the set's 30 texts
    assert json.loads((run / "metrics.json").read_text())["test"]["adversarial"] == out["adversarial"]
    # the Python function, without the shifted set: the same policy figures
    direct = evaluate_run(run, "test", adversarial={"tricky": str(adversarial_file)}, write=False)
    assert direct["adversarial"]["tricky"]["abstention"] == tricky["abstention"]
    assert "shift" not in direct

    table = runner.invoke(app, [*args, "--format", "table"], catch_exceptions=False)
    assert table.exit_code == 0 and "adversarial sets (in-domain: test)" in table.stdout and "tricky" in table.stdout
    assert "distribution shift" not in table.stdout


def test_adversarial_input_is_checked_as_shift_input_is(run, ner_run, tmp_path):
    result = runner.invoke(app, ["evaluate", str(run), "--adversarial", "tricky"])
    assert flag_message(result.exception).startswith("--adversarial 'tricky' is not NAME=FILE")
    with pytest.raises(ConfigError, match="adversarial tricky=.*nowhere.jsonl: no such file"):
        evaluate_run(run, "test", adversarial=[f"tricky={tmp_path / 'nowhere.jsonl'}"], write=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "alpha one", "label": "fourth"}) + "\n")
    with pytest.raises(DataError, match=r"adversarial bad=.*bad\.jsonl: labels 'fourth' \(1x\) are not labels"):
        evaluate_run(run, "test", adversarial=[f"bad={bad}"], write=False)
    with pytest.raises(ConfigError, match="adversarial name 'a' is given twice; give each adversarial set its own"):
        evaluate_run(run, "test", adversarial=[f"a={bad}", f"a={bad}"], write=False)
    with pytest.raises(ConfigError, match="adversarial is for text-classification runs"):
        evaluate_run(ner_run, "test", adversarial=[f"a={bad}"], write=False)
