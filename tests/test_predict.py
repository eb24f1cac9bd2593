"""Predictor: shapes, order- and batch-size-invariance, word masks, and the top-level API."""

from __future__ import annotations

import random

import numpy as np
import pytest

import caveat
from caveat.config import load_config
from caveat.inference import Predictor
from caveat.models.rundir import save_model, write_run_info
from caveat.training.loop import Trainer
from caveat.types import Task
from tests.conftest import tiny_overrides
from tests.fakes import FILLER, planted_texts

NER_LABELS = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
TOKEN_MAX_LENGTH = 16


@pytest.fixture(scope="module")
def text_run(tiny_backbone, text_data, tmp_path_factory):
    """The one trained run of this module (text classification, a few epochs)."""
    out = tmp_path_factory.mktemp("predict") / "text-run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=4)), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def token_run(tiny_backbone, ner_data, tmp_path_factory):
    """An untrained token run written with the run-dir API: masks and shapes need no training."""
    from transformers import AutoModel, AutoTokenizer

    from caveat.models.classifier import CaveatModel

    overrides = tiny_overrides(tiny_backbone, ner_data, "token-classification") + [
        f"train.max_length={TOKEN_MAX_LENGTH}"
    ]
    cfg = load_config(overrides=overrides)
    out = tmp_path_factory.mktemp("predict") / "token-run"
    model = CaveatModel(AutoModel.from_pretrained(tiny_backbone), len(NER_LABELS), task=Task.TOKEN_CLASSIFICATION)
    save_model(out, model, AutoTokenizer.from_pretrained(tiny_backbone))
    write_run_info(out, config=cfg, labels=NER_LABELS, data={})
    return out


def texts(n: int, seed: int) -> list[str]:
    """Texts of very different lengths, so that length-sorted batching reorders them."""
    rng = random.Random(seed)
    keywords = ["alpha", "beta", "gamma"]
    return [" ".join(rng.choices(FILLER, k=rng.randint(1, 25)) + [rng.choice(keywords)]) for _ in range(n)]


def test_text_shapes(text_run):
    inputs = texts(7, seed=0)
    preds = Predictor.from_run(text_run).predict(inputs)
    assert preds.labels == ["first", "second", "third"]
    assert preds.probs.shape == (1, 7, 3)
    assert preds.logits.shape == (1, 7, 3)
    np.testing.assert_allclose(preds.probs.sum(-1), 1.0, rtol=1e-6)
    assert preds.features.shape == (7, 32)  # the tiny backbone is 32 wide
    assert preds.mask is None


def test_text_model_predicts_planted_label(text_run):
    # The trained head was loaded (a random one would be right about a third of the time).
    rows = planted_texts(30, seed=7)
    preds = Predictor.from_run(text_run).predict([r["text"] for r in rows])
    predicted = [preds.labels[i] for i in preds.probs[0].argmax(-1)]
    assert np.mean([p == r["label"] for p, r in zip(predicted, rows)]) >= 0.9


def test_text_predictions_ignore_batch_size_and_order(text_run):
    inputs = texts(20, seed=1)
    predictor = Predictor.from_run(text_run, batch_size=64)
    reference = predictor.predict(inputs)
    for batch_size in (1, 3):
        other = Predictor.from_run(text_run, batch_size=batch_size).predict(inputs)
        np.testing.assert_allclose(other.probs, reference.probs, atol=1e-5)
        np.testing.assert_allclose(other.features, reference.features, atol=1e-5)
    order = np.random.default_rng(0).permutation(len(inputs))
    shuffled = Predictor.from_run(text_run, batch_size=3).predict([inputs[i] for i in order])
    np.testing.assert_allclose(shuffled.probs[0], reference.probs[0][order], atol=1e-5)
    np.testing.assert_allclose(shuffled.features, reference.features[order], atol=1e-5)


def test_one_input_alone_equals_it_in_a_batch(text_run):
    inputs = texts(9, seed=2)
    predictor = Predictor.from_run(text_run)
    batch = predictor.predict(inputs)
    alone = predictor.predict([inputs[4]])
    np.testing.assert_allclose(alone.probs[0, 0], batch.probs[0, 4], atol=1e-5)


def test_empty_input_raises(text_run, token_run):
    for run in (text_run, token_run):
        with pytest.raises(ValueError, match="at least one input"):
            Predictor.from_run(run).predict([])


def test_top_level_predict_agrees(text_run):
    # This module imported the inference engine and the training loop; the API names stay callable.
    assert callable(caveat.predict) and callable(caveat.train) and callable(caveat.evaluate)
    inputs = texts(5, seed=3)
    expected = Predictor.from_run(text_run).predict(inputs)
    got = caveat.predict(text_run, inputs, batch_size=2)
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5)
    assert got.labels == expected.labels


def test_token_shapes_and_mask(token_run):
    sentences = [["alice", "smith", "went", "to", "paris"], ["bob"], ["zebra", "rome"]]
    preds = Predictor.from_run(token_run).predict(sentences)
    assert preds.probs.shape == (1, 3, 5, 5)  # (M, N, W = longest sentence, C)
    np.testing.assert_allclose(preds.probs.sum(-1), 1.0, rtol=1e-6)
    assert preds.mask.tolist() == [[True] * 5, [True] + [False] * 4, [True, True] + [False] * 3]
    assert preds.features is None


def test_token_strings_are_split_on_whitespace(token_run):
    predictor = Predictor.from_run(token_run)
    as_text = predictor.predict(["alice  smith\tin rome"])
    as_words = predictor.predict([["alice", "smith", "in", "rome"]])
    np.testing.assert_array_equal(as_text.mask, as_words.mask)
    np.testing.assert_allclose(as_text.probs, as_words.probs, atol=1e-6)


def test_words_cut_by_max_length_are_masked(token_run):
    # Every word is in the vocabulary (one sub-token each): [CLS] + 14 words + [SEP] = 16 positions.
    long = [FILLER[i % len(FILLER)] for i in range(20)]
    preds = Predictor.from_run(token_run).predict([long, ["bob", "smith"]])
    kept = TOKEN_MAX_LENGTH - 2
    assert preds.mask[0].tolist() == [True] * kept + [False] * (20 - kept)
    assert preds.mask[1].tolist() == [True, True] + [False] * 18
    # a cut word's logits are not those of a real word (they are left at zero)
    assert not preds.logits[0, 0, kept:].any()
    assert preds.logits[0, 0, :kept].any(-1).all()


def test_token_predictions_ignore_batch_size_and_order(token_run):
    rng = random.Random(4)
    sentences = [rng.choices(FILLER + ["zebra", "alice"], k=rng.randint(1, 12)) for _ in range(10)]
    reference = Predictor.from_run(token_run, batch_size=64).predict(sentences)
    order = np.random.default_rng(1).permutation(len(sentences))
    other = Predictor.from_run(token_run, batch_size=3).predict([sentences[i] for i in order])
    np.testing.assert_array_equal(other.mask, reference.mask[order])
    np.testing.assert_allclose(other.probs[0], reference.probs[0][order], atol=1e-5)


def test_mc_dropout_samples_are_seeded_and_batched_sample_major(text_run):
    inputs = texts(7, seed=5)
    predictor = Predictor.from_run(text_run, batch_size=8)  # 8 // 3 = 2 inputs (6 rows) per forward
    a = predictor.predict(inputs, samples=3, seed=1)
    assert a.probs.shape == (3, 7, 3) and a.features.shape[0] == 7
    np.testing.assert_allclose(a.probs.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(
        a.probs, predictor.predict(inputs, samples=3, seed=1).probs
    )  # same seed, same numbers
    assert not np.allclose(a.probs, predictor.predict(inputs, samples=3, seed=2).probs)  # dropout is really on
    assert not np.allclose(a.probs[0], a.probs[1])
    assert not predictor.model.training  # back in eval mode


def test_mc_dropout_without_dropout_repeats_the_deterministic_pass(text_run):
    import torch

    predictor = Predictor.from_run(text_run, batch_size=8)
    for module in predictor.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    inputs = texts(7, seed=6)
    det = predictor.predict(inputs)
    mc = predictor.predict(inputs, samples=4)
    for k in range(4):  # every sample lines up with its own input: the (M*B) -> (M, B) reshape is right
        np.testing.assert_allclose(mc.probs[k], det.probs[0], atol=1e-5)


def test_mc_dropout_api_and_bad_samples(text_run):
    preds = caveat.predict(text_run, texts(3, seed=7), method="mc_dropout", samples=5)
    assert preds.probs.shape == (5, 3, 3)
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        Predictor.from_run(text_run).predict(["alpha"], samples=0)
    with pytest.raises(Exception, match="choose one of: deterministic, mc_dropout"):
        caveat.predict(text_run, ["alpha"], method="laplace")


def test_efficient_mc_dropout_with_all_layers_equals_naive_without_embedding_dropout(text_run):

    predictor = Predictor.from_run(text_run, batch_size=8)
    predictor.model.encoder.embeddings.dropout.p = 0.0  # the efficient mode never samples the embeddings
    n_layers = predictor.model.encoder.config.num_hidden_layers
    inputs = texts(7, seed=8)
    naive = predictor.predict(inputs, samples=3, seed=4)
    efficient = predictor.predict(inputs, samples=3, seed=4, top_layers=n_layers)
    np.testing.assert_allclose(efficient.probs, naive.probs, atol=1e-6)  # same seed, same numbers
    assert not np.allclose(naive.probs[0], naive.probs[1])  # and the samples really differ
    assert not predictor.model.training


def test_efficient_mc_dropout_top_layers_only(text_run):
    predictor = Predictor.from_run(text_run, batch_size=8)
    inputs = texts(5, seed=9)
    det = predictor.predict(inputs)
    head_only = predictor.predict(inputs, samples=6, top_layers=0)
    np.testing.assert_allclose(head_only.features, det.features, atol=1e-5)  # encoder ran deterministically
    assert not np.allclose(head_only.probs[0], head_only.probs[1])
    one = predictor.predict(inputs, samples=6, top_layers=1)
    assert one.probs.shape == (6, 5, 3)
    np.testing.assert_array_equal(one.probs, predictor.predict(inputs, samples=6, top_layers=1).probs)
    with pytest.raises(Exception, match="top_layers must be between 0 and the 2 encoder layers"):
        predictor.predict(inputs, samples=2, top_layers=3)
