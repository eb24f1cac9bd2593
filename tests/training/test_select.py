"""Choosing a training setting on validation (``caveat tune``): any config key, scored clean or under
attack; the winner is the best score (ties: the better clean score, then the first value); finished runs
with the same config are reused; bad input fails before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import caveat.training.select
from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.robustness.compare import AttackSettings
from caveat.robustness.run import attack_run
from caveat.training import select
from caveat.training.select import sweep
from caveat.training.validation_metric import validation_metric
from caveat.types import Task
from tests.conftest import tiny_overrides

ATTACK = {"max_change": 0.3, "min_similarity": 0.5}


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def test_sweep_any_key_on_validation_and_reuse_finished_runs(tiny_backbone, text_data, tmp_path, monkeypatch):
    overrides = tiny_overrides(tiny_backbone, text_data, epochs=2)
    args = [
        "tune",
        "--key",
        "train.label_smoothing",
        "--values",
        "0,0.2",
        "--out",
        str(tmp_path / "t"),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, [*args, *_sets(overrides)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["key"] == "train.label_smoothing" and [r["value"] for r in table["rows"]] == [0, 0.2]
    for row in table["rows"]:
        run = Path(row["run"])
        assert run.name == f"label_smoothing={row['value']:g}" and row["reused"] is False
        assert json.loads((run / "caveat.json").read_text())["config"]["train"]["label_smoothing"] == row["value"]
        assert row["validation"] == pytest.approx(evaluate_run(run, "validation", write=False)["accuracy"])
        assert row["score"] == row["validation"]
    best = max(table["rows"], key=lambda r: (r["score"], r["validation"]))  # max keeps the first of a tie
    assert table["best_value"] == best["value"] and table["best_run"] == best["run"]
    kept = tmp_path / "t" / "model" / "head.safetensors"
    assert kept.read_bytes() == (Path(best["run"]) / "model" / "head.safetensors").read_bytes()
    assert "(best)" in (tmp_path / "t" / "sweep.md").read_text()

    # again, with one value more: the two finished runs are scored again, only the new one trains
    trained = []
    real = caveat.training.select.run_training
    monkeypatch.setattr(
        caveat.training.select, "run_training", lambda cfg, out, **kw: trained.append(out) or real(cfg, out, **kw)
    )
    again = json.loads(
        CliRunner().invoke(app, [*args[:4], "0,0.2,0.1", *args[5:], *_sets(overrides)], catch_exceptions=False).stdout
    )
    assert [r["reused"] for r in again["rows"]] == [True, True, False] and trained == [
        tmp_path / "t" / "sweep" / "label_smoothing=0.1"
    ]
    assert [r["validation"] for r in again["rows"][:2]] == [r["validation"] for r in table["rows"]]


def test_python_api_tunes_like_the_cli(planted_sweep, tiny_backbone, text_data, tmp_path):
    import caveat

    scores = {0.1: (0.9, 0.4), 0.3: (0.9, 0.6)}
    direct = planted_sweep(scores, criterion="attack:greedy")  # also installs the planted training and scores
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data))
    table = caveat.tune(cfg, tmp_path / "api", "train.alpha", list(scores), criterion="attack:greedy", progress=False)
    assert table["best_value"] == direct["best_value"] == 0.3 and table["key"] == "train.alpha"
    assert (tmp_path / "api" / "model" / "head.safetensors").read_text() == "0.3"  # the planted run of the winner


def test_sweep_scored_under_attack_on_validation(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=2, objective="fgm"))
    settings = AttackSettings(max_examples=10, **ATTACK)
    table = sweep(
        cfg,
        tmp_path / "t",
        "train.alpha",
        [0.0, 1.0],
        criterion="attack:greedy",
        attack_settings=settings,
        similarity_model=str(tiny_backbone),
        progress=False,
    )
    for row in table["rows"]:
        direct = attack_run(
            row["run"],
            "validation",
            "greedy",
            max_examples=10,
            **ATTACK,
            similarity_model=str(tiny_backbone),
            write=False,
        )["attacks"]["greedy"]
        assert row["score"] == pytest.approx(direct["after_attack_accuracy"]) and row["attack"]["n"] == 10
        assert row["attack"]["reused"] is False
    best = max(table["rows"], key=lambda r: (r["score"], r["validation"]))
    assert table["best_value"] == best["value"] and table["criterion"] == "attack:greedy"
    assert table["attack_settings"]["max_examples"] == 10
    assert "validation after greedy" in (tmp_path / "t" / "sweep.md").read_text()


@pytest.fixture
def planted_sweep(tiny_backbone, text_data, tmp_path, monkeypatch):
    """``sweep`` with training and scoring replaced by planted scores: value -> (clean, attacked)."""

    def run(scores: dict, overrides: tuple[str, ...] = (), **options) -> dict:
        def fake_training(cfg, out, **kwargs):
            (out / "model").mkdir(parents=True)
            (out / "model" / "head.safetensors").write_text(str(cfg.train.alpha))
            (out / "caveat.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
            (out / "metrics.json").write_text("{}")
            return {"training": {"seconds": 1.0}}

        alpha = lambda run_dir: float(Path(run_dir).name.split("=")[1])  # noqa: E731
        monkeypatch.setattr(caveat.training.select, "run_training", fake_training)
        monkeypatch.setattr(select, "_validation_score", lambda run_dir, metric: scores[alpha(run_dir)][0])
        monkeypatch.setattr(select, "_attacked_score", lambda run_dir, *a: {"score": scores[alpha(run_dir)][1]})
        monkeypatch.setattr("caveat.robustness.similarity.SentenceEncoder", lambda name: None)
        cfg = load_config(overrides=[*tiny_overrides(tiny_backbone, text_data), *overrides])
        out = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        return sweep(cfg, out, "train.alpha", list(scores), progress=False, **options)

    return run


def test_the_winner_rules(planted_sweep):
    scores = {0.1: (0.90, 0.40), 0.3: (0.886, 0.55), 1.0: (0.80, 0.70), 3.0: (0.89, 0.55)}
    assert planted_sweep(scores)["best_value"] == 0.1  # clean validation
    assert planted_sweep(scores, criterion="attack:greedy")["best_value"] == 1.0
    within = planted_sweep(scores, criterion="attack:greedy", clean_tolerance=0.015)
    assert within["best_value"] == 3.0  # 1.0 is 10 points below the best clean; 0.3 ties 3.0 on attack, lower clean
    assert [r["eligible"] for r in within["rows"]] == [True, True, False, True]
    tie = planted_sweep({0.1: (0.9, 0.5), 0.3: (0.9, 0.5)}, criterion="attack:greedy")
    assert tie["best_value"] == 0.1
    md = select.to_markdown(within)
    assert "| 3 (best) |" in md and "| 1 (clean score too low) |" in md


def test_the_clean_score_is_the_runs_select_metric_and_a_loss_counts_lower_as_better(planted_sweep):
    table = planted_sweep({0.1: (0.52, 0), 0.3: (0.31, 0), 1.0: (0.40, 0)}, overrides=("train.select_metric=nll",))
    assert table["best_value"] == 0.3 and table["validation_metric"] == "nll"
    assert "validation nll (clean)" in select.to_markdown(table)
    within = planted_sweep(
        {0.1: (0.30, 0.5), 0.3: (0.31, 0.6), 1.0: (0.50, 0.9)},
        overrides=("train.select_metric=nll",),
        criterion="attack:greedy",
        clean_tolerance=0.05,
    )
    assert [r["eligible"] for r in within["rows"]] == [True, True, False] and within["best_value"] == 0.3


def test_a_relation_run_is_scored_by_the_official_semeval_score(tmp_path):
    run = tmp_path / "relation-run"  # its saved validation figures: the SemEval macro-F1 is read, not accuracy
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.8, "relation_macro_f1": 0.7}}))
    assert select._validation_score(run, validation_metric(Task.RELATION_CLASSIFICATION)) == 0.7
    assert select._validation_score(run, validation_metric(Task.RELATION_CLASSIFICATION, "accuracy")) == 0.8


def test_a_seed_sweep_carves_one_split_for_every_seed(tiny_backbone, text_data, tmp_path, monkeypatch):
    from caveat.data.load import split_seed

    carved, pinned = {}, []

    def fake_training(cfg, out, **kwargs):
        carved[cfg.seed] = split_seed(cfg)
        pinned.append(cfg.data.split_seed)
        (out / "model").mkdir(parents=True)
        (out / "caveat.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
        (out / "metrics.json").write_text("{}")
        return {"training": {"seconds": 1.0}}

    monkeypatch.setattr(caveat.training.select, "run_training", fake_training)
    monkeypatch.setattr(select, "_validation_score", lambda run_dir, metric: 0.5)
    cfg = load_config(overrides=[*tiny_overrides(tiny_backbone, text_data), "seed=7"])
    sweep(cfg, tmp_path / "seeds", "seed", [1, 2, 3], progress=False)
    assert carved == {1: 7, 2: 7, 3: 7}  # the config's seed carves; each point's own seed initialises
    pinned.clear()
    sweep(cfg, tmp_path / "alphas", "train.alpha", [0.1, 0.2], progress=False)
    assert pinned == [None, None]  # other sweeps keep the config as given (and so reuse its finished runs)
    given = load_config(overrides=[*tiny_overrides(tiny_backbone, text_data), "seed=7", "data.split_seed=4"])
    carved.clear()
    sweep(given, tmp_path / "given", "seed", [1, 2], progress=False)
    assert carved == {1: 4, 2: 4}  # a split seed the user set is kept


def test_bad_input_fails_before_training(tiny_backbone, text_data, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before the input was checked")

    monkeypatch.setattr(caveat.training.select, "run_training", no_training)
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data))
    with pytest.raises(
        ConfigError, match="unknown key 'train.smoothing' to sweep; valid keys: .*train.label_smoothing"
    ):
        sweep(cfg, tmp_path, "train.smoothing", [0.1])
    with pytest.raises(ConfigError, match=r"invalid configuration \(--set train.label_smoothing=2\)"):
        sweep(cfg, tmp_path, "train.label_smoothing", [0.1, 2])  # the bad value is found before the good one trains
    with pytest.raises(ConfigError, match="criterion must be 'validation' .* Got 'robust'"):
        sweep(cfg, tmp_path, "train.alpha", [0.1], criterion="robust")
    with pytest.raises(ConfigError, match="unknown attack 'bogus'"):
        sweep(cfg, tmp_path, "train.alpha", [0.1], criterion="attack:bogus")
    with pytest.raises(ConfigError, match="names several attacks"):
        sweep(cfg, tmp_path, "train.alpha", [0.1], criterion="attack:greedy,wordsub")
    with pytest.raises(ConfigError, match="clean_tolerance applies to an attack criterion"):
        sweep(cfg, tmp_path, "train.alpha", [0.1], clean_tolerance=0.01)
    with pytest.raises(ConfigError, match="repeat"):
        sweep(cfg, tmp_path, "train.alpha", [0.1, 0.1])
    unfinished = tmp_path / "sweep" / "alpha=0.3" / "checkpoint"
    unfinished.mkdir(parents=True)
    (unfinished / "state.json").write_text("{}")
    with pytest.raises(
        ConfigError, match=r"alpha=0.3 holds an unfinished run of this sweep; finish it with caveat train --resume"
    ):
        sweep(cfg, tmp_path, "train.alpha", [0.1, 0.3])  # before alpha=0.1 trains
    result = CliRunner().invoke(app, ["tune", "--alphas", "0.1", "--values", "1", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "either --alphas or --key/--values" in str(result.exception)
    result = CliRunner().invoke(app, ["tune", "--alphas", "a,b", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--alphas must be comma-separated numbers" in str(result.exception)


def test_cli_values_read_numbers_as_numbers():
    from caveat.cli.tune import _values

    assert _values("1e-3, 0.1,3,true,greedy", "--values") == [
        0.001,
        0.1,
        3,
        True,
        "greedy",
    ]  # YAML alone keeps 1e-3 a string
    with pytest.raises(ConfigError, match="--values needs comma-separated values"):
        _values(" , ", "--values")
