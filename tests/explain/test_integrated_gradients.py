"""Integrated gradients: completeness (attributions sum to f(x) - f(baseline)), convergence with more
steps, sub-token -> word sums, and clear errors. On an untrained tiny model: the axioms hold for any model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caveat.errors import ConfigError
from caveat.explain import integrated_gradients
from caveat.types import Task

TEXTS = ["the alpha card", "my beta parcel, xyzq now!", "gamma"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    from caveat.models.classifier import CaveatModel

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model; two threads only spin on a shared 2-core machine
    torch.manual_seed(0)
    model = CaveatModel(AutoModel.from_pretrained(tiny_backbone), 3, task=Task.TEXT_CLASSIFICATION)
    torch.nn.init.normal_(model.head.weight, std=1.0)  # logits that differ enough to explain
    yield model.eval(), AutoTokenizer.from_pretrained(tiny_backbone)
    torch.set_num_threads(before)


def logit_gap(model, tokenizer, text: str, target: int) -> float:
    """f(x) - f(baseline), computed here independently: baseline = [PAD] at every non-special position."""
    enc = tokenizer(text, return_special_tokens_mask=True)
    ids = torch.tensor([enc["input_ids"]])
    base = torch.where(torch.tensor([enc["special_tokens_mask"]]).bool(), ids, torch.full_like(ids, tokenizer.pad_token_id))
    with torch.no_grad():
        out = model(input_ids=torch.cat([ids, base]), attention_mask=torch.ones(2, ids.shape[1], dtype=torch.long)).logits
    return float(out[0, target] - out[1, target])


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", [None, 0, 2])
def test_attributions_sum_to_the_logit_gap(model_and_tokenizer, text, target):
    model, tokenizer = model_and_tokenizer
    a = integrated_gradients(model, tokenizer, text, target=target, steps=64)
    gap = logit_gap(model, tokenizer, text, a.target)
    assert abs(gap) > 1e-3  # a non-trivial gap to explain
    assert a.output - a.baseline_output == pytest.approx(gap, abs=1e-5)
    tol = 0.01 * abs(gap) + 1e-4
    assert abs(a.word_attributions.sum() - gap) <= tol
    assert abs(a.delta) <= tol and a.delta == pytest.approx(a.token_attributions.sum() - gap, abs=1e-4)
    if target is not None:
        assert a.target == target


def test_the_convergence_delta_shrinks_with_more_steps(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    deltas = [abs(integrated_gradients(model, tokenizer, TEXTS[1], target=1, steps=s).delta) for s in (2, 8, 64)]
    assert deltas[2] <= deltas[0] and deltas[2] < 0.01 * abs(logit_gap(model, tokenizer, TEXTS[1], 1)) + 1e-4


def test_sub_tokens_are_summed_into_their_words(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = integrated_gradients(model, tokenizer, TEXTS[1], steps=16)
    assert a.words == ["my", "beta", "parcel,", "xyzq", "now!"]
    assert a.tokens[0] == "[CLS]" and a.tokens[-1] == "[SEP]"
    assert a.token_words[0] is None and a.token_words[-1] is None
    assert a.token_attributions[0] == 0 and a.token_attributions[-1] == 0  # specials equal the baseline
    for w in range(len(a.words)):
        mine = [t for t, owner in enumerate(a.token_words) if owner == w]
        assert mine, a.words[w]
        assert a.word_attributions[w] == pytest.approx(a.token_attributions[mine].sum())
    assert len([o for o in a.token_words if o == 3]) == 4  # xyzq: x ##y ##z ##q


def test_words_cut_off_by_max_length_get_zero(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = integrated_gradients(model, tokenizer, "alpha beta gamma card money", steps=8, max_length=4)  # [CLS] a b [SEP]
    assert len(a.words) == 5 and np.all(a.word_attributions[2:] == 0) and np.any(a.word_attributions[:2] != 0)


def test_the_model_mode_is_restored(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()
    try:
        integrated_gradients(model, tokenizer, "alpha", steps=4)
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize("kwargs, match", [
    ({"text": "  "}, "text to explain must be a non-empty string"),
    ({"text": "alpha", "steps": 1}, "steps must be an integer >= 2"),
    ({"text": "alpha", "target": 3}, r"target must be a class index in 0..2; got 3"),
])
def test_bad_arguments_say_what_to_change(model_and_tokenizer, kwargs, match):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ConfigError, match=match):
        integrated_gradients(model, tokenizer, **kwargs)


def test_token_models_are_refused(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.task = Task.TOKEN_CLASSIFICATION
    try:
        with pytest.raises(ConfigError, match="text-classification runs so far"):
            integrated_gradients(model, tokenizer, "alpha")
    finally:
        model.task = Task.TEXT_CLASSIFICATION
