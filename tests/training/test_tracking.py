"""``train.tracking`` sends the loss, the validation metric and the config to the chosen tracker, locally.

TensorBoard's values are read back in ``tests/training/test_loop.py`` (the planted-rule run); the tiny runs here
take 12 steps (192 examples, batch 16, one epoch) with a validation after steps 6 and 12.
"""

from __future__ import annotations

import pytest
from accelerate.utils import is_wandb_available

from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.training.loop import Trainer
from caveat.training.tracking import check_tracking, flat_config
from tests.conftest import one_thread, tiny_overrides

try:
    import mlflow  # the tracking extra, part of dev
except ImportError:
    mlflow = None
needs_mlflow = pytest.mark.skipif(mlflow is None, reason="mlflow is not installed: pip install 'caveat[tracking]'")


def tiny_run(backbone, data, tracking: str, **train) -> list[str]:
    return tiny_overrides(backbone, data, epochs=1, evals_per_epoch=2, **train) + [f"train.tracking={tracking}"]


@pytest.fixture
def mlflow_globals(monkeypatch):
    """MLflow's process-wide tracking URI and file-store switch, restored after the test."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # absent during the test, as on a fresh machine; restored afterwards
    yield
    mlflow.set_tracking_uri(None)


@needs_mlflow
def test_mlflow_logs_loss_validation_and_config_in_a_local_store(tiny_backbone, text_data, tmp_path, mlflow_globals):
    cfg = load_config(overrides=tiny_run(tiny_backbone, text_data, "mlflow"))
    with one_thread():
        summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 12
    store = tmp_path / "run" / "logs" / "mlruns"
    assert store.is_dir()
    client = mlflow.tracking.MlflowClient(store.as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == list(range(1, 13))
    validation = client.get_metric_history(run.info.run_id, "validation/accuracy")
    assert sorted(m.step for m in validation) == [6, 12]
    assert [m.value for m in sorted(validation, key=lambda m: m.step)] == pytest.approx(
        [h["validation_accuracy"] for h in summary["history"]]
    )
    params = run.data.params
    assert params["train.tracking"] == "mlflow" and float(params["train.lr"]) == cfg.train.lr
    assert params["task"] == "text-classification"
    assert not list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))  # no TensorBoard alongside


@needs_mlflow
def test_mlflow_run_left_by_a_failure_is_closed_so_the_next_run_starts(
    tiny_backbone, text_data, tmp_path, mlflow_globals
):
    class Interrupt(Exception):
        pass

    def stop_at_two(state, stats):
        if state.global_step == 2:
            raise Interrupt

    cfg = load_config(overrides=tiny_run(tiny_backbone, text_data, "mlflow", max_steps=3))
    with one_thread():
        with pytest.raises(Interrupt):
            Trainer(cfg, tmp_path / "broken", progress=False, callbacks=[stop_at_two]).fit()
        assert mlflow.active_run() is None
        Trainer(cfg, tmp_path / "run", progress=False).fit()
    client = mlflow.tracking.MlflowClient((tmp_path / "broken" / "logs" / "mlruns").as_uri())
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments() if e.name == "train"])
    assert run.info.status == "FAILED"


def test_none_writes_no_tracker_files(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=tiny_run(tiny_backbone, text_data, "none", max_steps=2))
    with one_thread():
        Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert (tmp_path / "run" / "caveat.json").is_file()
    assert not (tmp_path / "run" / "logs").exists()


def test_missing_wandb_fails_before_training_with_the_install_command(tiny_backbone, text_data, tmp_path):
    if is_wandb_available():
        pytest.skip("wandb is installed here")
    cfg = load_config(overrides=tiny_run(tiny_backbone, text_data, "wandb"))
    with pytest.raises(ConfigError, match=r"train.tracking=wandb needs the wandb package.*pip install wandb"):
        Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert not (tmp_path / "run").exists()  # nothing was started


def test_missing_mlflow_names_pip_install_mlflow(monkeypatch):
    monkeypatch.setattr("accelerate.utils.is_mlflow_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install mlflow .*caveat\[tracking\]"):
        check_tracking("mlflow")
    check_tracking("tensorboard")
    check_tracking("none")


def test_tracking_config_is_checked_at_load():
    assert load_config().train.tracking == "tensorboard"
    with pytest.raises(ConfigError, match="train.tracking='neptune'"):
        load_config(overrides=["train.tracking=neptune"])
    with pytest.raises(ConfigError, match="train.tracking_uri='http://mlflow:5000': only train.tracking=mlflow"):
        load_config(overrides=["train.tracking_uri=http://mlflow:5000"])
    cfg = load_config(overrides=["train.tracking=mlflow", "train.tracking_uri=http://mlflow:5000"])
    assert cfg.train.tracking_uri == "http://mlflow:5000"


def test_flat_config_gives_every_key_as_a_scalar():
    cfg = load_config(overrides=["train.lr=0.001", "train.max_grad_norm=null"])
    flat = flat_config(cfg)
    assert flat["train.lr"] == 0.001 and flat["train.max_grad_norm"] == "null"
    assert flat["task"] == "text-classification" and flat["data.ood"] == "{}"
    assert flat["train.adv.steps"] == cfg.train.adv.steps  # nested sections flattened with dots
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
