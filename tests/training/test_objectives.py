"""Each objective changes the loss exactly as its definition says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from caveat.config import TrainConfig
from caveat.errors import ConfigError
from caveat.models.backbone import load_backbone
from caveat.models.classifier import CaveatModel
from caveat.models.encoding import Collator, encode_texts, encode_words
from caveat.training.objectives import OBJECTIVES, build_objective
from caveat.training.objectives.adversarial import example_norm, normalize, project
from caveat.training.objectives.rdrop import symmetric_kl
from caveat.types import Task


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def make_model(backbone, task=Task.TEXT_CLASSIFICATION, seed=0):
    torch.manual_seed(seed)
    tokenizer, encoder = load_backbone(str(backbone))
    return tokenizer, CaveatModel(encoder, 3, task=task, head_dropout=0.0)


def text_batch(tokenizer):
    rows = encode_texts(
        tokenizer, ["alpha the card", "my beta order now please", "gamma", "the dog alpha is here"], 32, [0, 1, 2, 0]
    )
    return Collator(tokenizer.pad_token_id)(rows)


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def run_step(backbone, accelerator, objective, task=Task.TEXT_CLASSIFICATION, eval_mode=True, **cfg):
    tokenizer, model = make_model(backbone, task)
    model.train(not eval_mode)  # eval: dropout off, deterministic passes; gradients still flow
    if task is Task.TOKEN_CLASSIFICATION:
        rows = encode_words(tokenizer, [["alice", "went", "to", "paris"], ["bob", "smith"]], 32, [[1, 0, 0, 2], [1, 2]])
        batch = Collator(tokenizer.pad_token_id)(rows)
    else:
        batch = text_batch(tokenizer)
    obj = build_objective(TrainConfig(objective=objective, **cfg), task)
    torch.manual_seed(1)
    np.random.seed(1)
    stats = obj.step(model, batch, accelerator)
    return stats, grads(model), model, batch, tokenizer


@pytest.mark.parametrize("name", OBJECTIVES.names())
@pytest.mark.parametrize("task", [Task.TEXT_CLASSIFICATION, Task.TOKEN_CLASSIFICATION])
def test_alpha_zero_equals_erm(tiny_backbone, accelerator, name, task):
    if task is Task.TOKEN_CLASSIFICATION and not OBJECTIVES.get(name).supports_tokens:
        with pytest.raises(ConfigError, match="text-classification only"):
            build_objective(TrainConfig(objective=name), task)
        return
    erm_stats, erm_grads, *_ = run_step(tiny_backbone, accelerator, "erm", task)
    stats, g, *_ = run_step(tiny_backbone, accelerator, name, task, alpha=0.0)
    assert stats["loss"] == pytest.approx(erm_stats["loss"], abs=1e-6)
    assert g.keys() == erm_grads.keys()
    for key in g:
        torch.testing.assert_close(g[key], erm_grads[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["fgm", "pgd", "freelb", "rdrop", "mixup"])
def test_positive_alpha_adds_a_regulariser(tiny_backbone, accelerator, name):
    erm_stats, erm_grads, *_ = run_step(tiny_backbone, accelerator, "erm", eval_mode=name not in ("rdrop",))
    stats, g, *_ = run_step(tiny_backbone, accelerator, name, alpha=1.0, eval_mode=name not in ("rdrop",))
    assert stats["loss"] == pytest.approx(stats["task_loss"] + stats["reg"], rel=1e-5)
    assert stats["reg"] > 0
    assert any(not torch.allclose(g[k], erm_grads[k]) for k in g)


def test_fgm_perturbation_has_configured_norm_and_raises_loss(tiny_backbone, accelerator):
    stats, *_ = run_step(tiny_backbone, accelerator, "fgm", alpha=1.0, adv={"epsilon": 0.05})
    assert stats["delta_norm"] == pytest.approx(0.05, rel=1e-4)
    # to first order, a step along the gradient increases the loss
    assert stats["reg"] > stats["task_loss"]


@pytest.mark.parametrize("name", ["pgd", "freelb"])
def test_multi_step_perturbations_stay_in_the_ball(tiny_backbone, accelerator, name):
    stats, *_ = run_step(
        tiny_backbone, accelerator, name, alpha=1.0, adv={"epsilon": 0.2, "step_size": 0.15, "steps": 3}
    )
    assert stats["delta_norm"] <= 0.2 + 1e-5
    assert stats["delta_norm"] > 0.1  # it moved towards the boundary


def test_pgd_finds_a_stronger_perturbation_than_its_first_step(tiny_backbone, accelerator):
    one, *_ = run_step(tiny_backbone, accelerator, "pgd", alpha=1.0, adv={"epsilon": 1.0, "step_size": 0.1, "steps": 1})
    three, *_ = run_step(
        tiny_backbone, accelerator, "pgd", alpha=1.0, adv={"epsilon": 1.0, "step_size": 0.1, "steps": 3}
    )
    assert three["reg"] > one["reg"] > one["task_loss"]


def test_normalize_and_project_are_per_example_and_ignore_padding():
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    unit = normalize(x, mask)
    torch.testing.assert_close(example_norm(unit, mask).flatten(), torch.ones(3))
    assert unit[0, 3:].abs().sum() == 0 and unit[2, 1:].abs().sum() == 0
    small = 0.1 * unit
    torch.testing.assert_close(project(small, 0.5, mask), small)  # inside the ball: unchanged
    torch.testing.assert_close(example_norm(project(3 * unit, 0.5, mask), mask).flatten(), torch.full((3,), 0.5))


def test_label_smoothing_matches_its_definition(tiny_backbone):
    obj = build_objective(TrainConfig(label_smoothing=0.2), Task.TEXT_CLASSIFICATION)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    logp = F.log_softmax(logits, -1)
    expected = (0.8 * -logp[torch.arange(6), labels] + 0.2 * -logp.mean(-1)).mean()
    torch.testing.assert_close(obj.task_loss(logits, labels), expected)


def test_symmetric_kl_closed_form():
    a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.5]])
    p, q = F.softmax(a, -1), F.softmax(b, -1)
    expected = ((p * (p / q).log()).sum() + (q * (q / p).log()).sum()) / 2
    torch.testing.assert_close(symmetric_kl(a, b, torch.tensor([True])), expected)
    assert symmetric_kl(a, a, torch.tensor([True])) == 0


def test_rdrop_without_dropout_has_no_regulariser(tiny_backbone, accelerator):
    stats, *_ = run_step(tiny_backbone, accelerator, "rdrop", alpha=1.0, eval_mode=True)
    assert stats["reg"] == pytest.approx(0.0, abs=1e-7)


def test_mixup_regulariser_is_the_mixed_cross_entropy(tiny_backbone, accelerator):
    stats, _, model, batch, _ = run_step(tiny_backbone, accelerator, "mixup", alpha=1.0, mixup={"beta": 0.4})
    torch.manual_seed(1)
    np.random.seed(1)
    perm = torch.randperm(4)
    lam = float(np.random.beta(0.4, 0.4))
    with torch.no_grad():
        f = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).features
        logits = model.head(lam * f + (1 - lam) * f[perm])
        y = batch["labels"]
        expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
    assert stats["lam"] == pytest.approx(lam)
    assert stats["reg"] == pytest.approx(expected.item(), rel=1e-5)


def test_unknown_objective_lists_the_valid_names():
    with pytest.raises(Exception, match="erm.*fgm.*freelb.*mixup.*pgd.*rdrop"):
        TrainConfig(objective="vat")
