"""SentenceEncoder through the Predictor: unit rows, identical texts at cosine 1 (tiny backbone, not MiniLM)."""

from __future__ import annotations

import numpy as np

from caveat.robustness.similarity import SentenceEncoder


def test_unit_embeddings(tiny_backbone):
    encoder = SentenceEncoder(str(tiny_backbone))
    emb = encoder.encode(["the card", "my phone is here today", "the card"])
    assert emb.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert abs(emb[0] @ emb[2] - 1) < 1e-5
    assert emb[0] @ emb[1] < 1 - 1e-4
    assert encoder.encode([]).shape == (0, 0)
