"""train.objective=consistency: CE on the clean rows plus alpha * KL(p_clean || p_view) over the rows that have a
perturbed view from train.augment (TRADES-style)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from caveat.config import TrainConfig, load_config
from caveat.errors import ConfigError
from caveat.models.backbone import load_backbone
from caveat.models.classifier import CaveatModel
from caveat.models.encoding import Collator, encode_texts
from caveat.training.loop import Trainer
from caveat.training.objectives import build_objective
from caveat.training.objectives.consistency import consistency_kl
from caveat.types import Task
from tests.conftest import one_thread, tiny_overrides

CLEAN = ["alpha the card", "my beta order now please", "gamma", "the dog alpha is here"]
# rows 0 and 2 have a view; row 2's is longer than any clean row
VIEWS = ["beta the card", None, "gamma rome gamma paris rome alice bob smith alpha beta", None]


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def make_model(backbone):
    torch.manual_seed(0)
    tokenizer, encoder = load_backbone(str(backbone))
    model = CaveatModel(encoder, 3, task=Task.TEXT_CLASSIFICATION, head_dropout=0.0)
    return tokenizer, model.eval()  # eval: dropout off, deterministic passes; gradients still flow


def paired_batch(tokenizer) -> dict:
    rows = encode_texts(tokenizer, CLEAN, 32, [0, 1, 2, 0])
    for row, view in zip(rows, VIEWS):
        if view is not None:
            row["perturbed_input_ids"] = encode_texts(tokenizer, [view], 32)[0]["input_ids"]
    return Collator(tokenizer.pad_token_id)(rows)


def step(backbone, accelerator, batch_of=paired_batch, objective="consistency", model=None, **cfg):
    """One objective step on a fresh tiny model: (stats, parameter gradients, model, batch)."""
    tokenizer, fresh = make_model(backbone)
    model = model(fresh) if model is not None else fresh
    batch = batch_of(tokenizer)
    stats = build_objective(TrainConfig(objective=objective, **cfg), Task.TEXT_CLASSIFICATION).step(
        model, batch, accelerator
    )
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return stats, grads, model, batch


def clean_only(tokenizer) -> dict:
    return Collator(tokenizer.pad_token_id)(encode_texts(tokenizer, CLEAN, 32, [0, 1, 2, 0]))


class Recording(torch.nn.Module):
    """The model, keeping the gradient of the logits of its last forward."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.logits = inner, None

    def forward(self, **inputs):
        out = self.inner(**inputs)
        out.logits.retain_grad()
        self.logits = out.logits
        return out


def test_collator_pads_views_to_the_clean_width_and_marks_them(tiny_backbone):
    tokenizer, _ = make_model(tiny_backbone)
    batch = paired_batch(tokenizer)
    assert batch["perturbed"].tolist() == [True, False, True, False]
    assert batch["perturbed_input_ids"].shape == batch["input_ids"].shape  # (B, T): one width for both
    assert batch["perturbed_attention_mask"].sum(1).max() > batch["attention_mask"].sum(1).max()  # the long view
    no_view = ~batch["perturbed"]  # a row without a view repeats its clean ids
    assert torch.equal(batch["perturbed_input_ids"][no_view], batch["input_ids"][no_view])
    assert "perturbed" not in clean_only(tokenizer)


def test_alpha_zero_equals_erm_on_the_clean_batch(tiny_backbone, accelerator):
    erm, erm_grads, *_ = step(tiny_backbone, accelerator, clean_only, objective="erm")
    stats, grads, *_ = step(tiny_backbone, accelerator, alpha=0.0)
    assert stats["loss"] == pytest.approx(erm["loss"], abs=1e-6) and stats["reg"] == 0 and stats["views"] == 0
    assert grads.keys() == erm_grads.keys()
    for key in grads:
        torch.testing.assert_close(grads[key], erm_grads[key], rtol=1e-5, atol=1e-7)


def test_task_loss_is_erm_on_the_clean_rows_of_the_stacked_pass(tiny_backbone, accelerator):
    erm, *_ = step(tiny_backbone, accelerator, clean_only, objective="erm")
    stats, *_ = step(tiny_backbone, accelerator, alpha=2.0)
    assert stats["task_loss"] == pytest.approx(erm["loss"], rel=1e-5)
    assert stats["views"] == 2
    assert stats["loss"] == pytest.approx(stats["task_loss"] + 2.0 * stats["reg"], rel=1e-5)


def test_kl_matches_a_hand_computation():
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    view = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])
    by_hand = []
    for a, b in zip(clean.tolist(), view.tolist()):
        p = [math.exp(x) / sum(math.exp(y) for y in a) for x in a]
        q = [math.exp(x) / sum(math.exp(y) for y in b) for x in b]
        by_hand.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))
    expected = sum(by_hand) / 2  # KL(p_clean || p_view), mean over rows
    assert consistency_kl(clean, view).item() == pytest.approx(expected, rel=1e-6)
    assert consistency_kl(view, clean).item() != pytest.approx(expected, rel=1e-3)  # the direction matters
    assert consistency_kl(clean, clean).item() == pytest.approx(0.0, abs=1e-7)


def test_reg_is_the_kl_between_the_clean_rows_and_their_views(tiny_backbone, accelerator):
    stats, _, model, batch = step(tiny_backbone, accelerator, alpha=1.0)
    has = batch["perturbed"]
    with torch.no_grad():
        clean = model(input_ids=batch["input_ids"][has], attention_mask=batch["attention_mask"][has]).logits
        views = model(
            input_ids=batch["perturbed_input_ids"][has], attention_mask=batch["perturbed_attention_mask"][has]
        ).logits
    assert stats["reg"] > 0
    assert stats["reg"] == pytest.approx(consistency_kl(clean, views).item(), rel=1e-4)


def test_gradients_flow_through_both_views(tiny_backbone, accelerator):
    _, grads, model, batch = step(tiny_backbone, accelerator, model=Recording, alpha=1.0)
    logits, grad = model.logits.detach(), model.logits.grad  # (B + K, C): the stacked pass
    has, labels = batch["perturbed"], batch["labels"]
    n = labels.shape[0]
    assert grad[n:].abs().sum(-1).min() > 0  # the views get gradient (only the KL reaches them)
    ce_only = (F.softmax(logits[:n], -1) - F.one_hot(labels, 3)) / n  # d CE / d clean logits
    torch.testing.assert_close(grad[:n][~has], ce_only[~has])  # rows without a view: CE alone
    assert (grad[:n][has] - ce_only[has]).abs().sum(-1).min() > 1e-6  # p_clean is not detached: the KL reaches it
    _, erm_grads, *_ = step(tiny_backbone, accelerator, clean_only, objective="erm")
    assert any(not torch.allclose(grads[f"inner.{k}"], erm_grads[k]) for k in erm_grads)


def test_missing_augmentation_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"train\.objective=consistency .* set train\.augment\.enabled=true"):
        load_config(overrides=["train.objective=consistency", "train.alpha=1.0"])


def test_token_classification_is_refused_with_the_fix(tiny_backbone, ner_data):
    overrides = tiny_overrides(tiny_backbone, ner_data, "token-classification", objective="consistency")
    for extra in ([], ["train.augment.enabled=true"]):
        with pytest.raises(ConfigError, match=r"train\.objective=consistency .* choose another train\.objective"):
            load_config(overrides=overrides + extra)
    with pytest.raises(ConfigError, match="'consistency' supports text-classification only"):
        build_objective(TrainConfig(objective="consistency"), Task.TOKEN_CLASSIFICATION)


def test_consistency_training_runs_and_logs_the_regulariser(tiny_backbone, text_data, tmp_path):
    augment = {
        "enabled": True,
        "mode": "random",
        "attack": "charswap",
        "fraction": 1.0,
        "start_epoch": 1,  # epoch 0 trains plain ERM: no views yet
        "min_similarity": 0.5,
        "similarity_model": str(tiny_backbone),
    }
    overrides = tiny_overrides(tiny_backbone, text_data, epochs=2, objective="consistency", alpha=1.0)
    cfg = load_config(overrides=overrides + [f"train.augment.{k}={v}" for k, v in augment.items()])
    seen = []
    with one_thread():
        summary = Trainer(cfg, tmp_path / "run", progress=False, callbacks=[lambda s, stats: seen.append(stats)]).fit()
    assert summary["steps"] == 2 * 12  # the edits are views of their rows, not rows: epochs keep their length
    (entry,) = summary["augment"]
    assert entry["epoch"] == 1 and entry["attacked"] == 192 and entry["added"] > 0
    first, second = seen[:12], seen[12:]
    assert all(s["views"] == 0 and s["reg"] == 0 for s in first)
    assert sum(s["views"] for s in second) == entry["added"]  # every view was seen once
    assert all(s["reg"] > 0 for s in second if s["views"])
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "train"), size_guidance={"scalars": 0})
    events.Reload()
    reg = events.Scalars("train/reg")
    assert [e.step for e in reg] == list(range(1, 25))
    assert [e.value for e in reg] == pytest.approx([s["reg"] for s in seen], rel=1e-5)
