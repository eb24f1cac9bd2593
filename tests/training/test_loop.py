"""The training loop learns planted rules, writes a complete run, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.progress import AFTER_ENV, EVERY_ENV, showing
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides


def test_text_model_learns_planted_rule(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data))
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["best_validation"] >= 0.95
    metrics = evaluate_run(tmp_path / "run", "test")
    assert metrics["accuracy"] >= 0.95 and metrics["macro_f1"] >= 0.95
    info = json.loads((tmp_path / "run" / "caveat.json").read_text())
    assert info["labels"] == ["first", "second", "third"]
    assert info["config"]["train"]["objective"] == "erm"
    assert len(info["data"]["fingerprint"]) == 64
    assert {"train", "validation", "calibration", "test"} <= set(info["data"]["splits"])
    assert not (tmp_path / "run" / "checkpoint").exists()  # removed once training finished
    assert_tensorboard_logged(tmp_path / "run" / "logs" / "train", summary)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"] == metrics["accuracy"]


def assert_tensorboard_logged(folder, summary: dict) -> None:
    """train.tracking=tensorboard (the default): every step's loss, each validation and the config as hparams."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, summary["steps"] + 1))  # log_every=1
    validation = events.Scalars("validation/accuracy")
    assert [e.step for e in validation] == [h["step"] for h in summary["history"]]
    assert [e.value for e in validation] == pytest.approx([h["validation_accuracy"] for h in summary["history"]])
    (hparams,) = folder.glob("*/hparams.yml")
    assert yaml.safe_load(hparams.read_text())["train.tracking"] == "tensorboard"


def test_token_model_learns_planted_entities(tiny_backbone, ner_data, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, ner_data, "token-classification", epochs=10))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    metrics = evaluate_run(tmp_path / "run", "test")
    assert metrics["f1"] >= 0.9
    assert set(metrics["per_type"]) == {"LOC", "PER"}


class Interrupt(Exception):
    pass


def test_resume_ends_where_uninterrupted_run_ends(tiny_backbone, text_data, tmp_path):
    # dropout on, so the resumed run must also restore the RNG to match
    overrides = tiny_overrides(tiny_backbone, text_data, epochs=2, checkpoint_every=5, objective="rdrop", alpha=0.5) + [
        "model.head_dropout=0.2"
    ]
    cfg = load_config(overrides=overrides)
    Trainer(cfg, tmp_path / "full", progress=False).fit()

    def stop_at_seven(state, stats):
        if state.global_step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, tmp_path / "resumed", progress=False, callbacks=[stop_at_seven]).fit()
    assert (tmp_path / "resumed" / "checkpoint" / "state.json").is_file()
    with pytest.raises(ConfigError, match="resume"):
        Trainer(cfg, tmp_path / "resumed", progress=False).fit()
    summary = Trainer(cfg, tmp_path / "resumed", progress=False).fit(resume=True)
    assert summary["steps"] == 24
    full = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model" / "model.safetensors"))
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=1e-6)
    full_head = load_file(str(tmp_path / "full" / "model" / "head.safetensors"))
    resumed_head = load_file(str(tmp_path / "resumed" / "model" / "head.safetensors"))
    torch.testing.assert_close(resumed_head["weight"], full_head["weight"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("select", ["best", "last"])
def test_select_keeps_the_best_or_the_last_evaluations_weights(tiny_backbone, text_data, tmp_path, select):
    cfg = load_config(
        overrides=tiny_overrides(tiny_backbone, text_data, epochs=2, evals_per_epoch=3, lr=1e-3, head_lr=1e-3)
        + [f"train.select={select}"]
    )
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    history = [h["validation_accuracy"] for h in summary["history"]]
    kept = evaluate_run(tmp_path / "run", "validation", write=False)["accuracy"]
    if select == "last":
        assert summary["selected_step"] == summary["steps"] == summary["history"][-1]["step"]
        assert kept == pytest.approx(history[-1])
    else:
        assert summary["selected_step"] == summary["best_step"] and kept == pytest.approx(max(history))


def test_training_off_a_terminal_prints_periodic_lines(tiny_backbone, text_data, tmp_path, monkeypatch, capsys):
    """Piped or in CI, the loop prints plain lines as it goes (the first after 2 s, here every step), not only at
    the end; stdout stays empty. Without the switch (library calls) or with progress=False it prints nothing."""
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=1))
    monkeypatch.setenv(EVERY_ENV, "0")
    monkeypatch.setenv(AFTER_ENV, "0")  # the tiny run takes well under the default 2 s
    with showing(command="train"):
        summary = Trainer(cfg, tmp_path / "run").fit()
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("caveat: train: optimizer steps ")]
    assert out == "" and len(lines) == summary["steps"] > 1
    assert lines[0].startswith(f"caveat: train: optimizer steps 1/{summary['steps']} (") and " loss " in lines[0]
    assert lines[-1].startswith(f"caveat: train: optimizer steps {summary['steps']}/{summary['steps']} (100%")

    Trainer(cfg, tmp_path / "quiet").fit()
    with showing(command="train"):
        Trainer(cfg, tmp_path / "off", progress=False).fit()
    assert capsys.readouterr().err.count("caveat: ") == 0
