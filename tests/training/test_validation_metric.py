"""``train.select_metric``: the validation metric that picks the kept weights, drives early stopping and names
``best_validation``. A relation run selects on the official ``relation_macro_f1`` by default, not on accuracy.

The loop tests plant the validation figures (``score_outputs`` replaced by a script) so that accuracy and
relation macro-F1 disagree on which evaluation is best; the tiny relation runs take 3 steps an epoch
(48 examples, batch 16) with a validation after each step.
"""

from __future__ import annotations

import json

import pytest

import caveat.training.loop as loop
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.models.describe import describe_run
from caveat.training.validation_metric import allowed_metrics, stored_metric, validation_metric
from caveat.types import Task
from tests.conftest import one_thread, tiny_overrides
from tests.fakes import planted_relations, write_jsonl

RELATIONS = "relation-classification"


@pytest.fixture(scope="module")
def relation_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("relations")
    for name, n, seed in (("train", 48, 1), ("validation", 24, 2), ("test", 24, 3)):
        write_jsonl(data / f"{name}.jsonl", planted_relations(n, seed))
    return data


def relation_config(backbone, data, *extra: str, **train):
    base = {"epochs": 1, "evals_per_epoch": 3, "tracking": "none"} | train
    overrides = [o for o in tiny_overrides(backbone, data, **base) if not o.startswith("task=")]
    return load_config(overrides=[*overrides, f"task={RELATIONS}", *extra])


class ScriptedScores:
    """Stands in for ``score_outputs``: evaluation k returns ``figures[k]``; ``saved_after`` lists, per save of the
    model, the evaluation it followed (so the weights in model/ are those of ``saved_after[-1]``)."""

    def __init__(self, figures: list[dict], monkeypatch):
        self.figures, self.done, self.saved_after = figures, 0, []
        save = loop.save_model

        def scripted(*args, **kwargs) -> dict:
            self.done += 1
            return {"n": 24, **self.figures[self.done - 1]}

        def recorded(*args, **kwargs):
            self.saved_after.append(self.done)
            return save(*args, **kwargs)

        monkeypatch.setattr(loop, "score_outputs", scripted)
        monkeypatch.setattr(loop, "save_model", recorded)


# accuracy prefers evaluation 1 (the model says Other a lot), the official score evaluation 2
DISAGREE = [
    {"accuracy": 0.9, "relation_macro_f1": 0.2, "nll": 0.5},
    {"accuracy": 0.6, "relation_macro_f1": 0.7, "nll": 0.6},
    {"accuracy": 0.8, "relation_macro_f1": 0.5, "nll": 0.4},
]


def test_auto_takes_each_tasks_usual_score():
    assert validation_metric(Task.TEXT_CLASSIFICATION).name == "accuracy"
    assert validation_metric(Task.RELATION_CLASSIFICATION).name == "relation_macro_f1"
    assert validation_metric(Task.TOKEN_CLASSIFICATION).name == "f1"
    assert load_config(overrides=[f"task={RELATIONS}"]).train.select_metric == "auto"


def test_nll_is_lower_is_better():
    nll = validation_metric("text-classification", "nll")
    accuracy = validation_metric("text-classification", "accuracy")
    assert not nll.higher_is_better and accuracy.higher_is_better
    assert nll.improves(0.3, None) and nll.improves(0.3, 0.4) and not nll.improves(0.5, 0.4)
    assert accuracy.improves(0.5, 0.4) and not accuracy.improves(0.3, 0.4)
    assert not nll.improves(0.4, 0.4) and not accuracy.improves(0.4, 0.4)  # a tie keeps the earlier model


def test_an_unknown_or_unavailable_metric_names_the_tasks_metrics():
    with pytest.raises(ConfigError, match=r"train.select_metric='bleu'.*relation-classification.*relation_macro_f1"):
        load_config(overrides=[f"task={RELATIONS}", "train.select_metric=bleu"])
    # entity-level NER validation has no nll, and relation_macro_f1 is for relation runs only
    with pytest.raises(ConfigError, match=r"'nll' is not a validation metric of token-classification runs.*token_acc"):
        load_config(overrides=["task=token-classification", "train.select_metric=nll"])
    with pytest.raises(ConfigError, match=r"choose one of: auto \(accuracy\), accuracy, macro_f1, weighted_f1, nll$"):
        validation_metric("text-classification", "relation_macro_f1")
    assert "relation_macro_f1" in allowed_metrics(RELATIONS) and "auto" in allowed_metrics("token-classification")


def test_a_relation_run_selects_on_relation_macro_f1(tiny_backbone, relation_data, tmp_path):
    """auto, with the real validation figures: the history, the summary and caveat info say relation_macro_f1."""
    with one_thread():
        summary = loop.Trainer(relation_config(tiny_backbone, relation_data), tmp_path / "run", progress=False).fit()
    assert summary["validation_metric"] == "relation_macro_f1"
    history = [h["validation_relation_macro_f1"] for h in summary["history"]]
    assert len(history) == 3 and not any("validation_accuracy" in h for h in summary["history"])
    assert summary["best_validation"] == max(history)
    info = json.loads((tmp_path / "run" / "caveat.json").read_text())
    assert info["training"]["validation_metric"] == "relation_macro_f1"
    assert describe_run(tmp_path / "run")["training"]["best_validation"]["metric"] == "relation_macro_f1"


@pytest.mark.parametrize(("select_metric", "kept"), [("auto", 2), ("relation_macro_f1", 2), ("accuracy", 1)])
def test_the_kept_model_follows_the_chosen_metric(
    tiny_backbone, relation_data, tmp_path, monkeypatch, select_metric, kept
):
    script = ScriptedScores(DISAGREE, monkeypatch)
    cfg = relation_config(tiny_backbone, relation_data, f"train.select_metric={select_metric}")
    with one_thread():
        summary = loop.Trainer(cfg, tmp_path / "run", progress=False).fit()
    name = "accuracy" if select_metric == "accuracy" else "relation_macro_f1"
    assert summary["validation_metric"] == name
    assert [h[f"validation_{name}"] for h in summary["history"]] == [f[name] for f in DISAGREE]
    assert summary["best_validation"] == DISAGREE[kept - 1][name]
    assert summary["best_step"] == summary["selected_step"] == summary["history"][kept - 1]["step"]
    assert script.saved_after[-1] == kept  # the weights in model/ are those of the chosen evaluation


def test_nll_keeps_the_lowest_and_early_stopping_waits_for_a_lower_one(
    tiny_backbone, relation_data, tmp_path, monkeypatch
):
    """nll 0.5, 0.6, 0.4, 0.45, 0.47: the third is best; patience 2 stops after the fifth of six evaluations
    (higher-is-better would keep the second and stop after the fourth)."""
    figures = [{"nll": v} for v in (0.5, 0.6, 0.4, 0.45, 0.47, 0.3)]
    script = ScriptedScores(figures, monkeypatch)
    cfg = relation_config(tiny_backbone, relation_data, "train.select_metric=nll", epochs=2, early_stopping_patience=2)
    with one_thread():
        summary = loop.Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert [h["validation_nll"] for h in summary["history"]] == [0.5, 0.6, 0.4, 0.45, 0.47]
    assert summary["stopped_early"] and summary["best_validation"] == 0.4
    assert summary["selected_step"] == summary["history"][2]["step"] and script.saved_after[-1] == 3


def test_runs_trained_before_the_option_still_name_their_metric():
    old = {"best_validation": 0.79, "history": [{"step": 5, "epoch": 1.0, "validation_accuracy": 0.79}]}
    assert stored_metric(old, RELATIONS) == "accuracy"
    assert stored_metric({"best_validation": 0.9}, "token-classification") == "f1"
    assert stored_metric({"validation_metric": "nll", "history": []}, "text-classification") == "nll"
