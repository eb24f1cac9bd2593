"""Distillation (Hinton et al. 2015): the loss is its definition, the teacher's targets reach each row in the
student's label order, and a student distilled from a tiny ensemble ends closer to it than ERM does."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from caveat.config import TrainConfig, load_config
from caveat.errors import ConfigError, RunDirError
from caveat.inference import Predictor, ensemble_predict
from caveat.models.encoding import Collator
from caveat.training.ensemble import train_ensemble
from caveat.training.loop import Trainer
from caveat.training.objectives import build_objective
from caveat.training.objectives.distill import distill_loss
from caveat.training.teacher import load_teacher, soft_targets
from caveat.types import Task
from tests.conftest import one_thread, tiny_overrides
from tests.fakes import planted_texts, write_jsonl

LABELS = ["first", "second", "third"]  # the planted data's labels, as the LabelMap sorts them


class Logits(torch.nn.Module):
    """A 'model' whose output is its one parameter: the gradient of a step is the gradient w.r.t. the logits."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.z = torch.nn.Parameter(logits.clone())

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.z)


class Backward:
    """The one Accelerator method an objective calls on one process."""

    @staticmethod
    def backward(loss):
        loss.backward()


def step(logits, soft, labels, **distill):
    """One distill step on fixed logits (B, C): its stats and the gradient w.r.t. the logits."""
    model = Logits(logits)
    batch = {"input_ids": None, "attention_mask": None, "labels": labels, "soft_labels": soft}
    stats = build_objective(TrainConfig(objective="distill", distill=distill), Task.TEXT_CLASSIFICATION).step(
        model, batch, Backward
    )
    return stats, model.z.grad


LOGITS = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -0.5]], dtype=torch.float64)  # float64: exact comparisons
SOFT = torch.tensor([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3]], dtype=torch.float64)
HARD = torch.tensor([0, 2])


def test_the_loss_is_the_hand_computation():
    t, w = 2.0, 0.7
    stats, grad = step(LOGITS, SOFT, HARD, temperature=t, weight=w)
    log_p = torch.log_softmax(LOGITS / t, -1)  # student at T
    kl = (SOFT * (SOFT.log() - log_p)).sum(-1).mean()  # KL(teacher_T || student_T), mean over the batch
    ce = -torch.log_softmax(LOGITS, -1)[torch.arange(2), HARD].mean()
    assert stats["reg"] == pytest.approx(t**2 * kl.item(), rel=1e-12)
    assert stats["task_loss"] == pytest.approx(ce.item(), rel=1e-12)
    assert stats["loss"] == pytest.approx((1 - w) * ce.item() + w * t**2 * kl.item(), rel=1e-12)
    # d/dz: (1 - w) (softmax(z) - onehot) / B + w T (softmax(z / T) - q) / B
    onehot = F.one_hot(HARD, 3).double()
    expected = ((1 - w) * (torch.softmax(LOGITS, -1) - onehot) + w * t * (torch.softmax(LOGITS / t, -1) - SOFT)) / 2
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_no_gradient_when_the_student_is_the_teacher(temperature):
    teacher = torch.softmax(LOGITS / temperature, -1)
    _, grad = step(LOGITS, teacher, HARD, temperature=temperature, weight=1.0)
    torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-7)
    _, grad = step(LOGITS, SOFT, HARD, temperature=temperature, weight=1.0)
    assert grad.abs().max() > 1e-3


def test_zero_teacher_probabilities_add_nothing():
    soft = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    expected = -torch.log_softmax(LOGITS[:1], -1)[0, 0]  # KL to a one-hot target is the cross-entropy
    torch.testing.assert_close(distill_loss(LOGITS[:1], soft, 1.0), expected)


def test_a_batch_without_soft_targets_is_refused():
    batch = {"input_ids": None, "attention_mask": None, "labels": HARD}
    objective = build_objective(TrainConfig(objective="distill"), Task.TEXT_CLASSIFICATION)
    with pytest.raises(ConfigError, match="soft targets.*train.distill.teacher"):
        objective.step(Logits(LOGITS), batch, Backward)


def test_the_collator_batches_soft_labels_as_floats():
    rows = [{"input_ids": [2, 7, 3], "labels": 0, "soft_labels": [0.5, 0.25, 0.25]}, {"input_ids": [2, 3], "labels": 1}]
    batch = Collator(0)(rows[:1] * 2)
    assert batch["soft_labels"].dtype == torch.float32 and batch["soft_labels"].shape == (2, 3)
    assert "soft_labels" not in Collator(0)(rows[1:])  # other rows batch as before


@pytest.fixture(scope="module")
def teacher(tiny_backbone, text_data, tmp_path_factory):
    """A 3-member tiny ensemble, trained a few epochs (not yet confident: its members disagree a little)."""
    out = tmp_path_factory.mktemp("distill") / "ensemble"
    with one_thread():
        train_ensemble(load_config(overrides=overrides(tiny_backbone, text_data)), out, 3, progress=False)
    return out


def overrides(backbone, data, *extra: str) -> list[str]:
    return tiny_overrides(backbone, data, epochs=4, tracking="none") + list(extra)


def test_soft_targets_are_the_members_mean_in_the_students_label_order(teacher, text_data):
    texts = [row["text"] for row in planted_texts(12, seed=5)]
    members = load_teacher(teacher, LABELS)
    assert len(members) == 3
    logits = ensemble_predict(members, texts).logits.astype(np.float64)  # (M, N, C) in the teacher's order
    expected = (np.exp(logits / 2) / np.exp(logits / 2).sum(-1, keepdims=True)).mean(0)  # (N, C)
    np.testing.assert_allclose(soft_targets(members, texts, LABELS, temperature=2.0), expected, rtol=1e-5)
    shuffled = ["third", "first", "second"]
    mapped = soft_targets(members, texts, shuffled, temperature=2.0)
    np.testing.assert_allclose(mapped, expected[:, [2, 0, 1]], rtol=1e-5)
    np.testing.assert_allclose(mapped.sum(-1), 1.0, rtol=1e-6)


def test_calibrated_soft_targets_are_the_teacher_as_caveat_serves_it(teacher, text_data, tmp_path):
    from scipy.special import log_softmax, logsumexp, softmax

    from caveat.calibration.run import calibrate_run
    from caveat.training.teacher import teacher_calibration

    served = tmp_path / "teacher"
    shutil.copytree(teacher, served)
    members = load_teacher(served, LABELS)
    with pytest.raises(ConfigError, match=rf"needs a calibrated teacher; {re.escape(str(served))} is not: run caveat"):
        teacher_calibration(members)
    with one_thread():
        calibrate_run(served, target_risk=0.2, alpha=0.2)
    members = load_teacher(served, LABELS)
    calibration = teacher_calibration(members)
    assert calibration.ensemble_temperature is not None and calibration.ensemble_temperature != 1.0
    texts = [row["text"] for row in planted_texts(12, seed=5)]
    # what caveat serves, by hand: the members pooled as calibrate chose, then the ensemble's temperature
    logp = log_softmax(ensemble_predict(members, texts).logits.astype(np.float64), axis=-1)  # (M, N, C)
    if calibration.ensemble_pooling == "probability":
        mean = logsumexp(logp, axis=0) - np.log(len(members))  # log of the mean probability
    else:
        mean = logp.mean(axis=0)  # mean log-probability (renormalised by the softmax below)
    pooled = softmax(mean / calibration.ensemble_temperature, axis=-1)  # (N, C)
    targets = soft_targets(members, texts, LABELS, calibration=calibration)
    np.testing.assert_allclose(targets, pooled, rtol=1e-5)
    assert np.abs(targets - soft_targets(members, texts, LABELS)).max() > 1e-3  # not the raw mean
    softened = np.exp(np.log(pooled) / 2) / np.exp(np.log(pooled) / 2).sum(-1, keepdims=True)  # then T = 2
    shuffled = ["third", "first", "second"]
    mapped = soft_targets(members, texts, shuffled, temperature=2.0, calibration=calibration)
    np.testing.assert_allclose(mapped, softened[:, [2, 0, 1]], rtol=1e-5)
    # one member alone: its logits divided by the run's temperature
    single = soft_targets(members[:1], texts, LABELS, calibration=calibration)
    logits = members[0].predict(texts).logits[0].astype(np.float64) / calibration.temperature
    np.testing.assert_allclose(single, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), rtol=1e-5)


def test_a_distilled_student_ends_closer_to_the_ensemble_than_erm(teacher, tiny_backbone, text_data, tmp_path):
    distill = ["train.objective=distill", f"train.distill.teacher={teacher}"]
    with one_thread():
        student = Trainer(
            load_config(overrides=overrides(tiny_backbone, text_data, *distill)), tmp_path / "student", progress=False
        )
        erm = Trainer(load_config(overrides=overrides(tiny_backbone, text_data)), tmp_path / "erm", progress=False)
        summaries = [trainer.fit() for trainer in (student, erm)]
    assert summaries[0]["steps"] == summaries[1]["steps"]
    texts = [row["text"] for row in json_rows(text_data / "test.jsonl")]
    ensemble = ensemble_predict(Predictor.from_run(teacher).ensemble(), texts).probs.mean(0)  # (N, C)

    def mean_kl(run) -> float:
        probs = Predictor.from_run(run).predict(texts).probs[0]
        return float((ensemble * (np.log(ensemble) - np.log(probs))).sum(-1).mean())

    # measured: 0.016 (student) vs 0.135 (ERM)
    assert mean_kl(tmp_path / "student") < 0.5 * mean_kl(tmp_path / "erm")
    recorded = json.loads((tmp_path / "student" / "caveat.json").read_text())["training"]["teacher"]
    assert recorded["path"] == str(teacher) and recorded["members"] == 3 and len(recorded["fingerprint"]) == 64
    assert recorded["temperature"] == 1.0 and recorded["weight"] == 1.0 and recorded["calibration_temperature"] is None


def json_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], r"train\.objective=distill needs a teacher: set train\.distill\.teacher=RUN"),
        (["train.distill.teacher=runs/x", "train.augment.enabled=true"], r"train\.augment cannot be combined"),
        (["train.distill.teacher=runs/x", "task=token-classification"], r"text-classification runs for now"),
        (["train.distill.teacher=runs/x", "train.distill.weight=1.5"], r"train\.distill\.weight=1\.5"),
        (["train.distill.teacher=runs/x", "train.distill.temperature=0"], r"train\.distill\.temperature=0"),
    ],
)
def test_bad_distill_configs_name_the_key_and_the_fix(extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=["train.objective=distill", *extra])


def test_the_teacher_path_is_anchored_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides=["train.objective=distill", "train.distill.teacher=runs/ens"])
    assert cfg.train.distill.teacher == str(tmp_path.resolve() / "runs" / "ens")


def test_a_teacher_with_other_labels_is_refused(teacher, tiny_backbone, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    keywords = {"alpha": "first", "beta": "second", "gamma": "fourth"}
    for split, seed in (("train", 1), ("validation", 2), ("test", 3)):
        write_jsonl(data / f"{split}.jsonl", planted_texts(30, seed=seed, keywords=keywords))
    cfg = load_config(
        overrides=overrides(tiny_backbone, data, "train.objective=distill", f"train.distill.teacher={teacher}")
    )
    with pytest.raises(ConfigError, match=r"other labels.*lacks 'fourth' and has 'third' the data lacks"):
        Trainer(cfg, tmp_path / "student", progress=False).fit()


def test_a_teacher_that_is_no_text_run_is_refused(teacher, tmp_path):
    with pytest.raises(RunDirError, match="not a caveat run"):
        load_teacher(tmp_path / "nothing", LABELS)
    tagger = tmp_path / "tagger"
    shutil.copytree(teacher, tagger, ignore=shutil.ignore_patterns("members"))
    info = json.loads((tagger / "caveat.json").read_text())
    info["task"] = "token-classification"
    (tagger / "caveat.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="token-classification run; distillation needs a text-classification"):
        load_teacher(tagger, LABELS)
