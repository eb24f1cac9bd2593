"""Embedding neighbours: cosine order, whole words only, no stop words, the tiny backbone's vocabulary."""

from __future__ import annotations

import re

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.robustness.attacks import EmbeddingNeighbours
from caveat.robustness.attacks.neighbours import whole_words


def planted():
    vocab = ["[PAD]", "good", "fine", "##ood", "the", "excellent", "bad", "g00d", "table"]
    angle = {
        "good": 0.0,
        "fine": 0.1,
        "##ood": 0.01,
        "the": 0.02,
        "excellent": 0.3,
        "bad": 0.5,
        "g00d": 0.03,
        "table": 1.5,
    }
    emb = np.zeros((len(vocab), 3))
    emb[0] = [0, 0, 1]
    for i, w in enumerate(vocab[1:], start=1):
        emb[i] = [np.cos(angle[w]), np.sin(angle[w]), 0]
    emb[5] *= 7.0  # cosine ignores length
    return emb, {w: i for i, w in enumerate(vocab)}


def test_nearest_whole_words_by_cosine():
    emb, vocab = planted()
    near = EmbeddingNeighbours(emb, vocab, k=3)
    assert near("good") == ["fine", "excellent", "bad"]  # not ##ood, the (stop word), g00d, itself
    assert near("Good") == ["fine", "excellent", "bad"]
    assert EmbeddingNeighbours(emb, vocab, k=3, min_cosine=float(np.cos(0.35)))("good") == ["fine", "excellent"]
    assert near("the") == ["good", "fine", "excellent"]  # stop words are looked up, never proposed
    assert near("unknownword") == [] and near("ood") == []
    with pytest.raises(ConfigError, match="k \\(candidates per word\\) must be >= 1"):
        EmbeddingNeighbours(emb, vocab, k=0)


def test_word_start_markers():
    assert whole_words({"Ġgood": 1, "ood": 2, "Ġthe": 3, "Ġ,": 4}) == {"good": 1, "the": 3}


def test_from_a_predictor(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    from caveat.inference import Predictor
    from caveat.models.classifier import CaveatModel
    from caveat.types import Task

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    model = CaveatModel(AutoModel.from_pretrained(tiny_backbone), 2, task=Task.TEXT_CLASSIFICATION)
    near = EmbeddingNeighbours.from_predictor(Predictor(model, tokenizer, ["a", "b"], Task.TEXT_CLASSIFICATION), k=5)
    out = near("card")
    vocab = tokenizer.get_vocab()
    assert len(out) == 5 and "card" not in out
    assert all(re.fullmatch(r"[a-z]{2,}", w) and w in vocab and w not in ("the", "and", "very") for w in out)
