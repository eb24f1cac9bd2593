"""``caveat certify`` end to end on the tiny trained run: JSON and a table out, metrics.json merged, the Python twin,
and a lexicon folder without PPDB synonyms refused before any model pass."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import caveat
from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError
from caveat.robustness.certify_run import certify_run
from tests.conftest import one_thread

runner = CliRunner()


@pytest.fixture
def run(served_run, tmp_path):
    """A copy of the session's calibrated tiny run (certify writes its metrics.json)."""
    return shutil.copytree(served_run, tmp_path / "run")


@pytest.fixture
def lexicons(tmp_path):
    """Synonyms among the filler words (and, as noisy PPDB pairs are, among the keywords, which are antonyms)."""
    folder = tmp_path / "lexicons"
    folder.mkdir()
    pairs = ["card account", "money parcel", "phone help", "store house", "city time", "order card", "alpha beta"]
    (folder / "ppdb_synonyms.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    (folder / "wordnet_antonyms.txt").write_text("alpha beta\n", encoding="utf-8")
    return folder


def test_cli_json_table_and_metrics(run, lexicons):
    args = [
        "certify",
        str(run),
        "--max-examples",
        "6",
        "--samples",
        "40",
        "--selection",
        "8",
        "--lexicons",
        str(lexicons),
    ]
    with one_thread():
        result = runner.invoke(app, args, catch_exceptions=False, env={"CAVEAT_PROGRESS_AFTER": "0"})
    assert result.exit_code == 0, result.output
    assert "caveat: certify: certify on test 6/6 (100%" in result.stderr  # progress on stderr, stdout is JSON
    out = json.loads(result.stdout)
    assert out["data"] == "test" and out["n"] == 6 and len(out["examples"]) == 6
    assert out["lexicons"]["folder"] == str(lexicons.absolute())
    assert out["sets"] == {"source": "ppdb", "set_size": 100, "words": out["sets"]["words"]}
    assert (out["samples"], out["selection"], out["delta"], out["budget"]) == (40, 8, 0.05, 0.2)
    assert 0 <= out["certified_accuracy"] <= min(out["smoothed_accuracy"], out["certified_rate"])
    assert out["clean_accuracy"] == 1.0 and out["queries"] >= 6  # the planted test split is easy for the model
    for ex in out["examples"]:
        assert ex["certified"] == (ex["p_a_lower"] - ex["tv_bound"] > 0.5)
        assert ex["changed"] == int(0.2 * ex["words"] + 1e-9)
        if ex["substitutable"] == 0:  # nothing to swap: every draw is the text itself
            assert ex["tv_bound"] == 0.0 and ex["votes"] == 40 and ex["certified"]
    saved = json.loads((run / "metrics.json").read_text())["certify"]["test"]
    assert {k: v for k, v in saved.items() if k not in ("seconds", "examples_per_s")} == {
        k: v for k, v in out.items() if k in saved and k not in ("seconds", "examples_per_s")
    }

    with one_thread():
        table = runner.invoke(app, [*args, "--format", "table", "--max-changed", "1"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "certified accuracy (right and certified)" in table.stdout and "budget 1 words" in table.stdout


def test_python_twin_and_refusals(run, lexicons, tmp_path):
    with one_thread():
        twin = caveat.load(run).certify(max_examples=3, samples=20, selection=4, lexicons=lexicons, write=False)
        direct = certify_run(run, max_examples=3, samples=20, selection=4, lexicons=lexicons, write=False)
    assert twin["examples"] == direct["examples"] and twin["n"] == 3
    metrics = run / "metrics.json"
    assert not metrics.is_file() or "certify" not in json.loads(metrics.read_text())  # write=False

    bare = tmp_path / "antonyms-only"
    bare.mkdir()
    (bare / "wordnet_antonyms.txt").write_text("alpha beta\n", encoding="utf-8")
    result = runner.invoke(app, ["certify", str(run), "--lexicons", str(bare)])
    assert isinstance(result.exception, ConfigError)
    assert "--lexicons" in flag_message(result.exception) and "ppdb_synonyms.txt" in str(result.exception)
    with pytest.raises(ConfigError, match="max_examples must be >= 1"):
        certify_run(run, max_examples=0, lexicons=lexicons)
