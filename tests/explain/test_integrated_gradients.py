"""Integrated gradients: completeness (attributions sum to f(x) - f(baseline)), convergence with more
steps, sub-token -> word sums, and clear errors. On an untrained tiny model: the axioms hold for any model.
``f`` is the probability of the explained label (``targets.py``), with temperature 1 here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caveat.errors import ConfigError
from caveat.explain import ExplainModel, integrated_gradients
from caveat.inference import Predictor
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
    torch.nn.init.normal_(model.head.weight, std=0.5)  # probabilities that differ, not saturated
    yield model.eval(), AutoTokenizer.from_pretrained(tiny_backbone)
    torch.set_num_threads(before)


def ig(model, tokenizer, text, target=None, max_length=128, **options):
    predictor = Predictor(model, tokenizer, ["x", "y", "z"], Task.TEXT_CLASSIFICATION, max_length=max_length)
    label = "predicted" if target is None else ["x", "y", "z"][target]
    return integrated_gradients(ExplainModel(predictor).explained(text, label), **options)


def logit_gap(model, tokenizer, text: str, target: int) -> float:
    """f(x) - f(baseline), computed here independently: baseline = [PAD] at every non-special position,
    f = the softmax probability of ``target``."""
    enc = tokenizer(text, return_special_tokens_mask=True)
    ids = torch.tensor([enc["input_ids"]])
    base = torch.where(
        torch.tensor([enc["special_tokens_mask"]]).bool(), ids, torch.full_like(ids, tokenizer.pad_token_id)
    )
    with torch.no_grad():
        out = model(
            input_ids=torch.cat([ids, base]), attention_mask=torch.ones(2, ids.shape[1], dtype=torch.long)
        ).logits
    p = torch.softmax(out.double(), -1)
    return float(p[0, target] - p[1, target])


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", [None, 0, 2])
def test_attributions_sum_to_the_logit_gap(model_and_tokenizer, text, target):
    model, tokenizer = model_and_tokenizer
    a = ig(model, tokenizer, text, target, steps=64)
    gap = logit_gap(model, tokenizer, text, a.target["index"])
    assert abs(gap) > 5e-5  # a non-trivial gap to explain
    assert a.value - a.details["baseline_value"] == pytest.approx(gap, abs=1e-6)
    tol = 0.01 * abs(gap) + 2e-6
    assert abs(a.word_attributions.sum() - gap) <= tol
    delta = a.details["delta"]
    assert abs(delta) <= tol and delta == pytest.approx(sum(a.details["token_attributions"]) - gap, abs=1e-5)
    if target is not None:
        assert a.target["index"] == target


def test_the_convergence_delta_shrinks_with_more_steps(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    deltas = [abs(ig(model, tokenizer, TEXTS[1], 1, steps=s).details["delta"]) for s in (2, 8, 64)]
    assert deltas[2] <= deltas[0] and deltas[2] < 0.01 * abs(logit_gap(model, tokenizer, TEXTS[1], 1)) + 1e-5


def test_sub_tokens_are_summed_into_their_words(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = ig(model, tokenizer, TEXTS[1], steps=16)
    tokens, owners = a.details["tokens"], a.details["token_words"]
    per_token = np.array(a.details["token_attributions"])
    assert a.words == ["my", "beta", "parcel,", "xyzq", "now!"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert owners[0] is None and owners[-1] is None
    assert per_token[0] == 0 and per_token[-1] == 0  # specials equal the baseline
    for w in range(len(a.words)):
        mine = [t for t, owner in enumerate(owners) if owner == w]
        assert mine, a.words[w]
        assert a.word_attributions[w] == pytest.approx(per_token[mine].sum())
    assert len([o for o in owners if o == 3]) == 4  # xyzq: x ##y ##z ##q


def test_words_cut_off_by_max_length_get_zero(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = ig(model, tokenizer, "alpha beta gamma card money", steps=8, max_length=4)  # [CLS] a b [SEP]
    assert len(a.words) == 5 and np.all(a.word_attributions[2:] == 0) and np.any(a.word_attributions[:2] != 0)


def test_the_model_mode_is_restored(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()
    try:
        predictor = Predictor(model, tokenizer, ["x", "y", "z"], Task.TEXT_CLASSIFICATION)
        model.train()  # Predictor puts it in eval mode
        integrated_gradients(ExplainModel(predictor).explained("alpha"), steps=4)
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"text": "  "}, "text to explain must be a non-empty string"),
        ({"text": "alpha", "steps": 1}, "steps must be an integer >= 2"),
        ({"text": "alpha", "target": "w"}, r"target 'w' is neither 'predicted'.*nor a label of this run \(x, y, z\)"),
        ({"text": "alpha", "target": "mutual_information"}, "integrated gradients needs a deterministic quantity"),
    ],
)
def test_bad_arguments_say_what_to_change(model_and_tokenizer, kwargs, match):
    model, tokenizer = model_and_tokenizer
    predictor = Predictor(model, tokenizer, ["x", "y", "z"], Task.TEXT_CLASSIFICATION)
    with pytest.raises(ConfigError, match=match):
        explained = ExplainModel(predictor).explained(kwargs.pop("text"), kwargs.pop("target", "predicted"))
        integrated_gradients(explained, **kwargs)
