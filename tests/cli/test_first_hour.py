"""The first hour with caveat (issue 18): errors give the right advice, empty input fails before a model loads,
a file named with --data is read by its extension, and a run without a test split still gets a report."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.config import load_config
from caveat.data.readers import read_split
from caveat.errors import ConfigError, DataError, RunDirError
from caveat.models.rundir import open_run
from caveat.training.loop import Trainer
from tests.conftest import one_thread, tiny_overrides
from tests.fakes import planted_texts

runner = CliRunner()


def _write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# -- a wrong label column: never suggest the text column -------------------------------------------------------


def test_a_missing_label_column_suggests_a_free_column_never_the_text(tmp_path):
    rows = [(r["text"], r["label"]) for r in planted_texts(20, seed=4)]
    path = _write_csv(tmp_path / "intents.csv", ["text", "intent"], rows)
    with pytest.raises(DataError, match=r"no column 'label' \(columns: 'text', 'intent'\)") as err:
        read_split(path, name="train", task="text-classification")
    assert "data.label_field=intent" in str(err.value) and "label_field=text" not in str(err.value)

    only_text = _write_csv(tmp_path / "texts.csv", ["text"], [(r[0],) for r in rows])
    with pytest.raises(DataError, match=r"add a 'label' column to the header row \(the only column, 'text', is "):
        read_split(only_text, name="train", task="text-classification")


def test_training_with_a_wrong_label_column_says_which_column_to_name(tiny_backbone, tmp_path):
    rows = [(r["text"], r["label"]) for r in planted_texts(20, seed=4)]
    train = _write_csv(tmp_path / "train.csv", ["text", "intent"], rows)
    args = ["train", "--train", str(train), "--model", str(tiny_backbone), "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert isinstance(result.exception, DataError), result.output
    assert "--set data.label_field=intent" in str(result.exception)
    assert "data.label_field=text" not in str(result.exception)


# -- a path that is not a run: say it does not exist, or name the runs beneath it ----------------------------------


def test_a_path_that_is_not_a_run_says_what_it_is(tmp_path):
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "caveat.json").write_text("{}")
    (runs / "notes").mkdir()

    with pytest.raises(RunDirError, match="does not exist; give the folder a run was written to") as err:
        open_run(tmp_path / "nowhere" / "run")
    assert "caveat train CONFIG --out" not in str(err.value)
    with pytest.raises(RunDirError, match=re.escape(f"does not exist; did you mean {runs / 'a'} or {runs / 'b'}?")):
        open_run(runs / "c")
    with pytest.raises(
        RunDirError, match=re.escape(f"holds runs beneath it: did you mean {runs / 'a'} or {runs / 'b'}?")
    ):
        open_run(runs)
    with pytest.raises(
        RunDirError,
        match=re.escape(f"it is a file, and a run is a folder holding caveat.json; give its folder: '{runs / 'a'}'"),
    ):
        open_run(runs / "a" / "caveat.json")
    with pytest.raises(RunDirError, match="holds no run beneath it; give the folder a run was written to"):
        open_run(runs / "notes")

    result = runner.invoke(app, ["predict", str(tmp_path), "a text"])  # runs two levels down
    assert isinstance(result.exception, RunDirError) and f"did you mean {runs / 'a'} or {runs / 'b'}?" in str(
        result.exception
    )


# -- empty input fails before any model loads ----------------------------------------------------------------------


def test_empty_stdin_or_file_fails_before_the_model_loads(served_run, tmp_path, monkeypatch):
    from caveat.inference import Predictor

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for empty input")

    monkeypatch.setattr(Predictor, "from_run", no_model)
    for stdin in ("", "\n  \n\n"):
        result = runner.invoke(app, ["predict", str(served_run)], input=stdin)
        assert isinstance(result.exception, ConfigError), result.exception
        assert "stdin held no texts" in str(result.exception)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for file in (empty, tmp_path / "empty.jsonl"):
        file.write_text("")
        result = runner.invoke(app, ["predict", str(served_run), "--file", str(file)])
        assert isinstance(result.exception, DataError) and "no texts" in str(result.exception)


# -- files read one way ----------------------------------------------------------------------------------------------


def test_evaluate_data_reads_a_csv_by_its_extension_on_a_label_sentence_run(served_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(served_run, run)
    info = json.loads((run / "caveat.json").read_text())
    info["config"]["data"]["format"] = "label-sentence"  # as a run trained on SST-2-style files
    (run / "caveat.json").write_text(json.dumps(info))
    rows = planted_texts(24, seed=7)
    mine = _write_csv(tmp_path / "my.csv", ["text", "label"], [(r["text"], r["label"]) for r in rows])
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(mine), "--methods", "least_confidence"])
    assert result.exit_code == 0, result.exception
    assert json.loads(result.stdout)["n"] == 24

    sentences = tmp_path / "mine.txt"  # no extension to go by: the run's own format
    sentences.write_text("".join(f"{r['label']} {r['text']}\n" for r in rows))
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(sentences), "--methods", "least_confidence"])
    assert result.exit_code == 0, result.exception
    assert json.loads(result.stdout)["n"] == 24


def test_report_of_a_run_without_a_test_split_uses_validation_and_says_so(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    overrides = [o for o in tiny_overrides(tiny_backbone, text_data, epochs=1) if not o.startswith("data.test=")]
    with one_thread():
        Trainer(load_config(overrides=overrides), run, progress=False).fit()
    assert "test" not in json.loads((run / "caveat.json").read_text())["data"]["splits"]

    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.exception
    assert "no test split; the report is on the validation split" in result.stderr
    report = json.loads((run / "report.json").read_text())
    assert report["data"] == "validation"
    assert any("This run has no test split" in note for note in report["notes"])

    evaluated = runner.invoke(app, ["evaluate", str(run)])
    assert evaluated.exit_code == 0, evaluated.exception
    assert "no test split; evaluating the validation split" in evaluated.stderr
    validation = json.loads((run / "caveat.json").read_text())["data"]["splits"]["validation"]["n"]
    assert json.loads(evaluated.stdout)["n"] == validation
