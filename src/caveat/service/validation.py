"""Checks that depend on the settings or the served run; each failure is a 422 naming the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field

from caveat.service.errors import RequestError
from caveat.service.schemas import DEFAULT_K, DEFAULT_SAMPLES, ExplainRequest, PredictRequest
from caveat.service.settings import ServiceSettings
from caveat.types import Task


@dataclass(frozen=True)
class PredictOptions:
    """How to predict one request; requests with the same ``batch_key`` share forward passes."""

    method: str = "deterministic"
    samples: int = 1
    k: int = 5
    explain: bool = False

    @property
    def batch_key(self) -> tuple:
        return ("predict", self.method, self.samples)


@dataclass(frozen=True)
class ExplainOptions:
    """One explanation; never grouped with another request."""

    target: int | None = None
    steps: int = 50
    token: object = field(default_factory=object, compare=False)  # makes every batch_key unique

    @property
    def batch_key(self) -> tuple:
        return ("explain", id(self.token))


def _check_lengths(texts: list[str], settings: ServiceSettings, name: str) -> None:
    limit = settings.max_text_chars
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise RequestError(f"{name}[{i}] has {len(text)} characters, over this service's limit of {limit}: "
                               "shorten it or split it into several inputs")


def check_predict(req: PredictRequest, settings: ServiceSettings, *, task: Task, labels: list[str]) -> PredictOptions:
    """Options of a valid request; raises ``RequestError`` (422) otherwise."""
    inputs = req.inputs
    if len(inputs) > settings.max_texts:
        raise RequestError(f"{len(inputs)} inputs is more than this service's limit of {settings.max_texts} per request: "
                           f"split them into requests of at most {settings.max_texts}")
    if req.tokens is not None:
        if task is not Task.TOKEN_CLASSIFICATION:
            raise RequestError("tokens are for token-classification runs; this run is text-classification: send texts")
        _check_lengths([" ".join(words) for words in req.tokens], settings, "tokens")
    else:
        _check_lengths(req.texts, settings, "texts")
    samples = 1
    if req.method == "mc_dropout":
        if task is not Task.TEXT_CLASSIFICATION:
            raise RequestError("method='mc_dropout' is for text-classification runs so far; use method='deterministic'")
        samples = DEFAULT_SAMPLES if req.samples is None else req.samples
        if samples > settings.max_samples:
            raise RequestError(f"samples={samples} is more than this service's limit of {settings.max_samples}: "
                               f"use 2..{settings.max_samples}")
    k = min(DEFAULT_K, len(labels)) if req.k is None else req.k
    if task is Task.TEXT_CLASSIFICATION and k > len(labels):
        raise RequestError(f"k={k} is more than the run's {len(labels)} labels: use 1..{len(labels)}")
    if req.explain:
        if task is not Task.TEXT_CLASSIFICATION:
            raise RequestError("explain=true is for text-classification runs so far; drop explain")
        if len(inputs) > settings.max_explain_texts:
            raise RequestError(f"explain=true with {len(inputs)} inputs is more than this service's limit of "
                               f"{settings.max_explain_texts}: send at most {settings.max_explain_texts} texts, "
                               "or call /v1/explain per text")
    return PredictOptions(method=req.method, samples=samples, k=k, explain=req.explain)


def check_explain(req: ExplainRequest, settings: ServiceSettings, *, task: Task, labels: list[str]) -> ExplainOptions:
    """Options of a valid explanation request; raises ``RequestError`` (422) otherwise."""
    if task is not Task.TEXT_CLASSIFICATION:
        raise RequestError("/v1/explain is for text-classification runs so far; this run tags tokens")
    _check_lengths([req.text], settings, "text")
    target = None
    if req.label is not None:
        if req.label not in labels:
            shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
            raise RequestError(f"label={req.label!r} is not one of the run's labels: choose one of {shown}, or omit it")
        target = labels.index(req.label)
    return ExplainOptions(target=target, steps=req.steps)
