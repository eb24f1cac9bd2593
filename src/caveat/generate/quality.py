"""How good a generated summary is, against its reference: a quality in [0, 1] per output, higher = better.

Summaries are not right or wrong, so selective generation is measured against a continuous quality
(:mod:`caveat.generate.rejection`). Choose measures by name with :func:`get_qualities`:

- ``rougeL``: ROUGE-L F-measure (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries") from
  the ``rouge-score`` package, with its Porter stemmer, as lm-polygraph scores XSum (its ``RougeMetric``);
  ``RougeL(stem=False)`` is ``RougeScorer(["rougeL"])`` as it comes.
- ``embedding``: cosine similarity of the packaged all-MiniLM-L6-v2 sentence embeddings
  (:class:`caveat.robustness.similarity.SentenceEncoder`) of output and reference, clipped to [0, 1].

An empty output scores 0 under both (``rouge-score`` gives 0 for no tokens; an embedding of nothing
would be arbitrary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.registry import Registry
from caveat.robustness.similarity import SentenceEncoder


class Quality(Protocol):
    """A measure of outputs against references: ``(N,)`` floats in [0, 1], higher = better. ``needs`` names
    the keyword arguments its constructor takes from :func:`get_qualities` (shared, expensive objects)."""

    name: str
    needs: tuple[str, ...]

    def describe(self) -> str: ...

    def __call__(self, outputs: Sequence[str], references: Sequence[str]) -> np.ndarray: ...


QUALITIES: Registry[type] = Registry("quality measure")


@lru_cache(maxsize=2)
def _scorer(stem: bool):
    # rouge-score imports nltk (for the stemmer): loaded when a summary is first scored, not with caveat
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l(output: str, reference: str, *, stem: bool = True) -> float:
    """ROUGE-L F-measure of ``output`` against ``reference`` (``rouge-score``'s tokenizer: lower-cased
    ASCII letters and digits), in [0, 1]; 0 when either side has no tokens."""
    return float(_scorer(stem).score(reference, output)["rougeL"].fmeasure)


def _pairs(outputs: Sequence[str], references: Sequence[str]) -> None:
    if isinstance(outputs, str) or isinstance(references, str):
        raise DataError("outputs and references must be sequences of strings, not one string; wrap it: [text]")
    if len(outputs) != len(references):
        raise DataError(
            f"got {len(outputs)} outputs for {len(references)} references; give one output per reference, in order"
        )


@QUALITIES.register("rougeL")
@dataclass(frozen=True)
class RougeL:
    """ROUGE-L F-measure against the reference (:func:`rouge_l`)."""

    stem: bool = True
    name = "rougeL"
    needs = ()

    def describe(self) -> str:
        stemmed = "Porter-stemmed " if self.stem else ""
        return f"ROUGE-L F-measure against the reference ({stemmed}rouge-score tokens)"

    def __call__(self, outputs: Sequence[str], references: Sequence[str]) -> np.ndarray:
        _pairs(outputs, references)
        return np.array([rouge_l(o, r, stem=self.stem) for o, r in zip(outputs, references)], dtype=np.float64)


@QUALITIES.register("embedding")
class EmbeddingSimilarity:
    """Cosine similarity of sentence embeddings of output and reference, clipped to [0, 1].

    Parameters
    ----------
    encoder : anything with ``encode(texts) -> (N, D)`` unit-length embeddings; default the packaged
        all-MiniLM-L6-v2, loaded on first use.
    """

    name = "embedding"
    needs = ("encoder",)

    def __init__(self, *, encoder=None) -> None:
        self.encoder = encoder if encoder is not None else SentenceEncoder()

    def describe(self) -> str:
        return "cosine similarity of all-MiniLM-L6-v2 sentence embeddings with the reference, clipped to [0, 1]"

    def __call__(self, outputs: Sequence[str], references: Sequence[str]) -> np.ndarray:
        _pairs(outputs, references)
        if not outputs:
            return np.zeros(0)
        out = np.asarray(self.encoder.encode(list(outputs)), dtype=np.float64)  # (N, D)
        ref = np.asarray(self.encoder.encode(list(references)), dtype=np.float64)  # (N, D)
        sim = np.clip(np.sum(out * ref, axis=1), 0.0, 1.0)  # (N,) unit vectors: the dot is the cosine
        return np.where([bool(o.strip()) for o in outputs], sim, 0.0)


def get_qualities(spec: str | Sequence[str], *, encoder=None) -> list[Quality]:
    """The measures named in ``spec`` (``"rougeL"``, ``"rougeL,embedding"`` or a list), first = primary.

    ``encoder`` is given to ``embedding`` (e.g. the one meaning clusters already loaded).
    """
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"name at least one quality measure, e.g. 'rougeL'; got {spec!r}")
    if len(set(names)) < len(names):
        raise ConfigError(f"quality measures {spec!r} name one twice; list each once, e.g. 'rougeL,embedding'")
    shared = {"encoder": encoder}
    return [cls(**{k: shared[k] for k in cls.needs}) for cls in map(QUALITIES.get, names)]
