"""Meaning clusters of sampled answers, for semantic entropy and its relatives.

The clustering is the sequential algorithm of Kuhn, Gal & Farquhar (2023, "Semantic Uncertainty:
Linguistic Invariances for Uncertainty Estimation in Natural Language Generation", ICLR): each answer
joins the first cluster whose first member means the same, or opens a new cluster. "Means the same"
is pluggable:

- :class:`EmbeddingEquivalence` (the default, offline): cosine similarity of sentence embeddings
  (the packaged all-MiniLM-L6-v2) at or above a threshold;
- :class:`EntailmentEquivalence`: bidirectional entailment under an NLI model the user supplies, as
  in Kuhn et al. (2023) and Farquhar et al. (2024, "Detecting hallucinations in large language models
  using semantic entropy", Nature).

Under both, answers equal after SQuAD normalisation are the same meaning without asking a model.

Each also gives a continuous ``similarity`` in [0, 1], the weighted graph of the graph-based estimators
(Lin, Trivedi & Sun 2024; :mod:`caveat.generate.graph`), built by :func:`similarities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from caveat.errors import ConfigError
from caveat.generate.correctness import normalize_answer
from caveat.robustness.similarity import SentenceEncoder


class Equivalence(Protocol):
    """Decides which pairs of texts mean the same."""

    def matrix(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        """(N, N) bool, symmetric, True on the diagonal."""

    def similarity(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        """(N, N) float in [0, 1], symmetric, 1 on the diagonal."""


class EmbeddingEquivalence:
    """Same meaning when the cosine similarity of the sentence embeddings is at least ``threshold``.

    Parameters
    ----------
    threshold : cosine similarity in (0, 1] at which two answers count as one meaning.
    encoder : anything with ``encode(texts) -> (N, D)`` unit-length embeddings; default the packaged
        all-MiniLM-L6-v2 (:class:`caveat.robustness.similarity.SentenceEncoder`).
    """

    def __init__(self, threshold: float = 0.9, *, encoder=None) -> None:
        if not 0 < threshold <= 1:
            raise ConfigError(f"the meaning threshold must lie in (0, 1]; got {threshold!r}. E.g. 0.9")
        if encoder is None:
            encoder = SentenceEncoder()
        self.threshold, self.encoder = threshold, encoder

    def matrix(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        emb = np.asarray(self.encoder.encode(list(texts)), dtype=np.float64)  # (N, D)
        return emb @ emb.T >= self.threshold - 1e-9

    def similarity(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        """(N, N) cosine similarity of the embeddings clipped to [0, 1] (opposed answers are as unrelated as
        orthogonal ones), 1 on the diagonal. The threshold plays no part."""
        emb = np.asarray(self.encoder.encode(list(texts)), dtype=np.float64)  # (N, D)
        sim = np.clip(emb @ emb.T, 0.0, 1.0)  # (N, N)
        np.fill_diagonal(sim, 1.0)
        return sim


class EntailmentEquivalence:
    """Same meaning when an NLI model finds entailment both ways (Kuhn et al. 2023).

    Each answer is put after the question, as Kuhn et al. do, so that short answers have a context.

    Parameters
    ----------
    model : a local folder (or hub name) of a sequence-classification NLI model whose ``id2label``
        names an entailment class (e.g. a DeBERTa MNLI model).
    batch_size : premise/hypothesis pairs per forward pass.
    """

    def __init__(self, model: str, *, batch_size: int = 32) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        labels = {int(i): str(name).lower() for i, name in self.model.config.id2label.items()}
        entail = [i for i, name in labels.items() if name.startswith("entail")]
        if len(entail) != 1:
            raise ConfigError(
                f"NLI model {model!r} has labels {sorted(labels.values())}; it needs exactly one "
                "'entailment' label (id2label in its config.json)"
            )
        self.entailment, self.batch_size = entail[0], batch_size

    def _logits(self, texts: Sequence[str], question: str | None) -> np.ndarray:
        """(N, N, C) NLI logits of premise i, hypothesis j, each framed by the question; N >= 2. The diagonal
        is never asked (zeros)."""
        import torch

        n = len(texts)
        framed = [f"{question} {t}" if question else t for t in texts]
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        rows = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            enc = self.tokenizer(
                [framed[i] for i, _ in chunk],
                [framed[j] for _, j in chunk],
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                rows.append(self.model(**enc).logits.float().numpy())  # (B, C)
        flat = np.concatenate(rows)  # (N (N - 1), C), in the order of ``pairs``
        out = np.zeros((n, n, flat.shape[1]))
        out[tuple(np.array(pairs).T)] = flat
        return out

    def matrix(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        if len(texts) < 2:
            return np.ones((len(texts), len(texts)), dtype=bool)
        entails = self._logits(texts, question).argmax(-1) == self.entailment  # (N, N)
        np.fill_diagonal(entails, True)
        return entails & entails.T

    def similarity(self, texts: Sequence[str], *, question: str | None = None) -> np.ndarray:
        """(N, N) mean of the two directions' entailment probability, ``(p(i ⊨ j) + p(j ⊨ i)) / 2``, 1 on the
        diagonal: Lin et al.'s (2024) "entail" similarity (their other choice, 1 - p(contradiction), needs a
        contradiction label that not every NLI model has)."""
        if len(texts) < 2:
            return np.ones((len(texts), len(texts)))
        logits = self._logits(texts, question)  # (N, N, C)
        z = np.exp(logits - logits.max(-1, keepdims=True))
        entail = z[..., self.entailment] / z.sum(-1)  # (N, N) softmax
        sim = (entail + entail.T) / 2
        np.fill_diagonal(sim, 1.0)
        return sim


def make_equivalence(*, threshold: float = 0.9, nli_model: str | None = None) -> Equivalence:
    """Bidirectional entailment under ``nli_model`` when given, else embedding similarity ≥ ``threshold``."""
    return EntailmentEquivalence(nli_model) if nli_model else EmbeddingEquivalence(threshold)


@dataclass
class Meanings:
    """Meaning clusters of one generation.

    Attributes
    ----------
    sample_labels : (K,) cluster id of each sampled answer, numbered by first appearance.
    greedy_label : cluster id of the greedy answer, or -1 when it means none of the samples.
    """

    sample_labels: np.ndarray
    greedy_label: int

    @property
    def n_clusters(self) -> int:
        return int(self.sample_labels.max()) + 1 if len(self.sample_labels) else 0


def cluster(same: np.ndarray) -> np.ndarray:
    """Kuhn et al.'s sequential clustering of N texts from their (N, N) equivalence matrix.

    Text i joins the first existing cluster whose first member is equivalent to it, else opens a new
    one. Returns (N,) cluster ids numbered by first appearance.
    """
    labels = np.full(len(same), -1)
    heads: list[int] = []
    for i in range(len(same)):
        for c, head in enumerate(heads):
            if same[i, head]:
                labels[i] = c
                break
        else:
            labels[i] = len(heads)
            heads.append(i)
    return labels


def _distinct(texts: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """The first index of each distinct text after SQuAD normalisation, and (N,) which of them each text is."""
    norm = [normalize_answer(t) for t in texts]
    distinct = sorted(set(norm), key=norm.index)
    return [norm.index(t) for t in distinct], np.array([distinct.index(t) for t in norm], dtype=int)


def similarities(samples: Sequence[str], equivalence: Equivalence, *, question: str | None = None) -> np.ndarray:
    """(K, K) similarity of the samples in [0, 1], symmetric, 1 on the diagonal.

    Answers equal after SQuAD normalisation have similarity 1 without asking a model (as in :func:`meanings`);
    the equivalence is asked once, about the distinct texts.
    """
    first, where = _distinct(samples)
    if len(first) < 2:
        return np.ones((len(samples), len(samples)))
    sub = np.asarray(equivalence.similarity([samples[i] for i in first], question=question), dtype=np.float64)
    if sub.shape != (len(first), len(first)):
        raise ConfigError(
            f"{type(equivalence).__name__}.similarity returned shape {sub.shape} for {len(first)} texts; "
            f"it must return ({len(first)}, {len(first)})"
        )
    sim = sub[np.ix_(where, where)]  # (K, K)
    np.fill_diagonal(sim, 1.0)
    return sim


def meanings(greedy: str, samples: Sequence[str], equivalence: Equivalence, *, question: str | None = None) -> Meanings:
    """Cluster the samples, then place the greedy answer in the first cluster whose head it matches.

    The greedy answer does not open a cluster of its own, so the sample clusters (and the entropies
    over them) are exactly those of the samples alone.
    """
    texts = [greedy, *samples]
    norm = [normalize_answer(t) for t in texts]
    same = np.array([[a == b for b in norm] for a in norm])  # (K+1, K+1)
    distinct = sorted(set(norm), key=norm.index)
    if len(distinct) > 1:  # ask the model once per distinct normalised text
        first = [norm.index(t) for t in distinct]
        sub = np.asarray(equivalence.matrix([texts[i] for i in first], question=question), dtype=bool)
        where = np.array([distinct.index(t) for t in norm])
        same = sub[np.ix_(where, where)]
    labels = cluster(same[1:, 1:])
    heads = [int(np.flatnonzero(labels == c)[0]) + 1 for c in range(labels.max() + 1)] if len(labels) else []
    greedy_label = next((c for c, h in enumerate(heads) if same[0, h]), -1)
    return Meanings(labels, greedy_label)
