"""caveat attack end to end on a tiny trained run: JSON out, metrics.json merged, bad input refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.robustness.run import attack_run
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides

runner = CliRunner()


@pytest.fixture(scope="module")
def text_run(tiny_backbone, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("attack") / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=4)), out, progress=False).fit()
    return out


def test_cli_end_to_end(text_run, tiny_backbone):
    args = ["attack", str(text_run), "--data", "test", "--max-examples", "12", "--similarity-model", str(tiny_backbone)]
    result = runner.invoke(
        app,
        [*args, "--attack", "charswap,wordsub,greedy", "--max-change", "0.3", "--min-similarity", "0.5"],
        catch_exceptions=False,
        env={"CAVEAT_PROGRESS_AFTER": "0"},  # every phase shows, however short
    )
    assert result.exit_code == 0, result.output
    for name in ("charswap", "wordsub", "greedy"):  # each attack's loop tells of itself on stderr, stdout is JSON
        assert f"caveat: attack: {name} attack on test 12/12 (100%" in result.stderr
    out = json.loads(result.stdout)
    assert out["data"] == "test" and out["n"] == 12 and list(out["attacks"]) == ["charswap", "wordsub", "greedy"]
    for m in out["attacks"].values():
        assert (
            m["n"] == 12
            and m["clean_accuracy"] == out["clean_accuracy"]
            and m["attacked"] == round(12 * m["clean_accuracy"])
        )
        assert 0 <= m["after_attack_accuracy"] <= m["clean_accuracy"]
        assert m["after_attack_accuracy"] == pytest.approx((m["attacked"] - m["successes"]) / 12)
        assert m["mean_queries"] >= 1 and m["examples_per_s"] > 0
        assert m["constraints"] == {"max_change": 0.3, "min_similarity": 0.5, "protected": []}
        for ex in m["examples"]:
            assert ex["success"] and ex["changed_fraction"] <= 0.3 and ex["similarity"] >= 0.5
            assert ex["adversarial_label"] != ex["label"] == ex["original_label"]
    assert out["attacks"]["greedy"]["successes"] > 0  # the tiny model leans on filler words too
    saved = json.loads((text_run / "metrics.json").read_text())["attack"]["test"]
    assert saved["greedy"] == json.loads(json.dumps(out["attacks"]["greedy"]))

    # a second attack run adds to what is there; the same attack again replaces its own entry
    result = runner.invoke(app, [*args, "--attack", "greedy", "--protect", "alpha,beta,gamma"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((text_run / "metrics.json").read_text())["attack"]["test"]
    assert set(saved) == {"charswap", "wordsub", "greedy"}
    assert saved["greedy"]["constraints"] == {
        "max_change": 0.2,
        "min_similarity": 0.8,
        "protected": ["alpha", "beta", "gamma"],
    }
    for ex in saved["greedy"]["examples"]:  # only filler words were edited
        assert [w for w in ex["adversarial"].split() if w in ("alpha", "beta", "gamma")] == [
            w for w in ex["original"].split() if w in ("alpha", "beta", "gamma")
        ]


def test_examples_out_keeps_every_example_of_every_attack(text_run, tiny_backbone, tmp_path):
    path = tmp_path / "out" / "examples.jsonl"
    args = ["attack", str(text_run), "--max-examples", "10", "--similarity-model", str(tiny_backbone)]
    result = runner.invoke(
        app,
        [*args, "--attack", "charswap,greedy", "--max-change", "0.3", "--min-similarity", "0.5"]
        + ["--examples-out", str(path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert out["examples_out"] == {"path": str(path), "rows": 20} and len(rows) == 20
    for name in ("charswap", "greedy"):
        mine = [r for r in rows if r["attack"] == name]
        figures = out["attacks"][name]
        assert [r["index"] for r in mine] == list(range(10))
        assert sum(r["attacked"] for r in mine) == figures["attacked"]
        assert sum(r["success"] for r in mine) == figures["successes"] > 0
        won = [r for r in mine if r["success"]]
        assert [{k: r[k] for k in ex} for ex, r in zip(figures["examples"], won)] == figures["examples"]
        for r in mine:
            assert "answered_clean" not in r  # the run is not calibrated: no policy decisions to report
            assert bool(r["edits"]) == (r["adversarial"].split() != r["original"].split())
            # the edits name exactly the words the attack counts as changed
            assert sum(len(e.split(" -> ")[0].split()) for e in r["edits"]) == r["changed"]


def test_bad_input(text_run, tiny_backbone, tmp_path):
    result = runner.invoke(app, ["attack", str(text_run), "--attack", "greedy,bogus"])
    assert result.exit_code != 0 and "unknown attack 'bogus'" in str(result.exception)
    with pytest.raises(ConfigError, match="unknown attack 'bogus'; choose one of: bae, char_adjacent, .*greedy"):
        attack_run(text_run, attacks="bogus")
    for bad in (0.0, 1.5):
        with pytest.raises(
            ConfigError, match=r"max_change must be in \(0, 1\] \(the largest fraction of words changed\). Got"
        ):
            attack_run(text_run, max_change=bad)
    with pytest.raises(ConfigError, match="max_examples must be >= 1"):
        attack_run(text_run, max_examples=0)
    for bad in (tmp_path, tmp_path / "examples.json"):
        with pytest.raises(ConfigError, match="examples_out must be a .jsonl file path"):
            attack_run(text_run, examples_out=bad)
    with pytest.raises(ConfigError, match="data='nowhere.txt' is neither a file nor a split name"):
        attack_run(text_run, "nowhere.txt", similarity_model=str(tiny_backbone))
