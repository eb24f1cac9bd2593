"""Checks that depend on the settings or the served run; each failure is a 422 naming the value and the fix."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from caveat.data.markers import marker_problem
from caveat.errors import ConfigError
from caveat.explain.targets import find_span
from caveat.generate.answer import estimator_names
from caveat.generate.estimators import ESTIMATORS, parse_estimators
from caveat.generate.sampling import SamplingConfig
from caveat.service.errors import RequestError
from caveat.service.schemas import (
    DEFAULT_GENERATE_SAMPLES,
    DEFAULT_K,
    DEFAULT_LIME_SAMPLES,
    DEFAULT_MAX_EVALS,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SAMPLES,
    ExplainRequest,
    GenerateRequest,
    PredictRequest,
)
from caveat.service.settings import ServiceSettings
from caveat.types import Task

if TYPE_CHECKING:
    from caveat.generate.policy import GenerationPolicy
    from caveat.generate.sampling import SamplingConfig


@dataclass(frozen=True)
class PredictOptions:
    """How to predict one request; requests with the same ``batch_key`` share forward passes."""

    method: str = "deterministic"
    samples: int = 1
    k: int = 5
    explain: bool = False
    seed: int = 0  # mc_dropout: each input's draws depend on it and the input's position only
    certify: bool = False  # SAFER per input, after the shared deterministic pass

    @property
    def batch_key(self) -> tuple:
        return ("predict", self.method, self.samples)


_unnamed = itertools.count()  # requests without an ID (outside the app) still get distinct seeds


def request_seed(request_id: str | None) -> int:
    """The default MC-dropout seed of a request: from its ID (in ``[0, 2**63)``), so that the logs tie the
    figures to the draws; from a per-process counter when there is no ID."""
    if request_id is None:
        return next(_unnamed)
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class ExplainOptions:
    """One explanation (``caveat.explain.explain``'s arguments); never grouped with another request."""

    method: str = "ig"
    target: str = "predicted"
    span: str | None = None
    label: str | None = None  # NER: the span's entity type (text runs fold ``label`` into ``target``)
    seed: int = 0
    options: dict = field(default_factory=dict)  # the method's own: steps (ig), max_evals (shap), samples (lime)
    token: object = field(default_factory=object, compare=False)  # makes every batch_key unique

    @property
    def batch_key(self) -> tuple:
        return ("explain", id(self.token))


def _check_lengths(texts: list[str], settings: ServiceSettings, name: str) -> None:
    limit = settings.max_text_chars
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise RequestError(
                f"{name}[{i}] has {len(text)} characters, over this service's limit of {limit}: "
                "shorten it or split it into several inputs"
            )


def check_predict(
    req: PredictRequest, settings: ServiceSettings, *, task: Task, labels: list[str], request_id: str | None = None
) -> PredictOptions:
    """Options of a valid request; raises ``RequestError`` (422) otherwise. Without a ``seed`` field, an
    mc_dropout request's seed comes from ``request_id`` (``request_seed``)."""
    inputs = req.inputs
    if len(inputs) > settings.max_texts:
        raise RequestError(
            f"{len(inputs)} inputs is more than this service's limit of {settings.max_texts} per request: "
            f"split them into requests of at most {settings.max_texts}"
        )
    if req.tokens is not None:
        if task is not Task.TOKEN_CLASSIFICATION:
            raise RequestError("tokens are for token-classification runs; this run is text-classification: send texts")
        _check_lengths([" ".join(words) for words in req.tokens], settings, "tokens")
    else:
        _check_lengths(req.texts, settings, "texts")
    if req.spans is not None and task is not Task.RELATION_CLASSIFICATION:
        raise RequestError(f"spans are for relation-classification runs; this run is {task.value}: drop spans")
    if task is Task.RELATION_CLASSIFICATION:
        for i, text in enumerate(inputs):
            problem = marker_problem(text)
            if problem:
                raise RequestError(
                    f"texts[{i}]: {problem}. Mark the two entities as <e1>…</e1> and <e2>…</e2>, or send plain "
                    'texts with spans: [{"head": [start, end], "tail": [start, end]}] per text'
                )
    _check_timeout(req.timeout_s, settings)
    samples = 1
    if req.method == "mc_dropout":
        if task is not Task.TEXT_CLASSIFICATION:
            raise RequestError("method='mc_dropout' is for text-classification runs so far; use method='deterministic'")
        samples = DEFAULT_SAMPLES if req.samples is None else req.samples
        if samples > settings.max_samples:
            raise RequestError(
                f"samples={samples} is more than this service's limit of {settings.max_samples}: "
                f"use 2..{settings.max_samples}"
            )
    k = min(DEFAULT_K, len(labels)) if req.k is None else req.k
    if task.classifies_texts and k > len(labels):
        raise RequestError(f"k={k} is more than the run's {len(labels)} labels: use 1..{len(labels)}")
    if req.explain:
        if task is not Task.TEXT_CLASSIFICATION:
            raise RequestError(
                "explain=true is for text-classification runs: drop explain, and explain a span "
                "with /v1/explain (tokens and span)"
            )
        if len(inputs) > settings.max_explain_texts:
            raise RequestError(
                f"explain=true with {len(inputs)} inputs is more than this service's limit of "
                f"{settings.max_explain_texts}: send at most {settings.max_explain_texts} texts, "
                "or call /v1/explain per text"
            )
    if req.certify:
        _check_certify(len(inputs), settings, task)
    seed = 0
    if req.method == "mc_dropout":
        seed = request_seed(request_id) if req.seed is None else req.seed
    return PredictOptions(method=req.method, samples=samples, k=k, explain=req.explain, seed=seed, certify=req.certify)


def _check_certify(n_inputs: int, settings: ServiceSettings, task: Task) -> None:
    """certify=true: a text-classification run, and few enough texts (each costs 111 model passes)."""
    if task is not Task.TEXT_CLASSIFICATION:
        raise RequestError(
            f"certify=true is for text-classification runs; this run is {task.value}: drop certify "
            "(caveat attack RUN measures its robustness to word swaps empirically)"
        )
    if n_inputs > settings.max_certify_texts:
        raise RequestError(
            f"certify=true with {n_inputs} inputs is more than this service's limit of "
            f"{settings.max_certify_texts}: send at most {settings.max_certify_texts} texts per request"
        )


# besides the run's labels
TEXT_TARGETS = ("predicted", "uncertainty", "least_confidence", "entropy", "mutual_information")


def _shown(names: list[str], limit: int = 20) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def entity_types(labels: list[str]) -> list[str]:
    """The entity types of a BIO tag set, in tag order (``B-LOC`` -> ``LOC``)."""
    return list(dict.fromkeys(t[2:] for t in labels if t[:2] in ("B-", "I-")))


def check_explain(req: ExplainRequest, settings: ServiceSettings, *, task: Task, labels: list[str]) -> ExplainOptions:
    """Options of a valid explanation request; raises ``RequestError`` (422) otherwise."""
    if req.tokens is not None and task is not Task.TOKEN_CLASSIFICATION:
        raise RequestError("tokens are for token-classification runs; this run is text-classification: send text")
    name, chars = ("text", len(req.text)) if req.tokens is None else ("tokens", len(" ".join(req.tokens)))
    if chars > settings.max_text_chars:
        raise RequestError(
            f"{name} has {chars} characters, over this service's limit of {settings.max_text_chars}: "
            "explain a shorter input"
        )
    options = {
        "ig": {"steps": settings.explain_steps if req.steps is None else req.steps},
        "shap": {"max_evals": DEFAULT_MAX_EVALS if req.max_evals is None else req.max_evals},
        "lime": {"samples": DEFAULT_LIME_SAMPLES if req.samples is None else req.samples},
        "occlusion": {},
    }[req.method]
    common = {"method": req.method, "seed": req.seed, "options": options}
    if task is Task.TOKEN_CLASSIFICATION:
        return ExplainOptions(**common, **_check_span(req, labels))
    if req.span is not None:
        raise RequestError(
            f"span={req.span!r} is for token-classification runs; this run classifies whole texts: "
            "drop span, and choose what to explain with target (a label, 'predicted' or 'uncertainty')"
        )
    target = req.target
    if req.label is not None:  # an alias of target=<label>
        if target not in ("predicted", req.label):
            raise RequestError(
                f"label={req.label!r} and target={target!r} ask for two different things: send one of "
                "them (label=X is the same as target=X)"
            )
        if req.label not in labels:
            raise RequestError(
                f"label={req.label!r} is not one of the run's labels: choose one of {_shown(labels)}, or omit it"
            )
        target = req.label
    if target not in TEXT_TARGETS and target not in labels:
        raise RequestError(
            f"target={target!r} is neither 'predicted', 'uncertainty', 'entropy', 'mutual_information' "
            f"nor one of the run's labels ({_shown(labels)}): choose one of them"
        )
    if target == "mutual_information" and req.method == "ig":
        raise RequestError(
            "target='mutual_information' samples dropout masks, which integrated gradients cannot "
            "explain: use method='occlusion', 'shap' or 'lime', or target='entropy'"
        )
    return ExplainOptions(**common, target=target)


def _check_span(req: ExplainRequest, labels: list[str]) -> dict:
    """``span`` and ``label`` of an NER explanation (``target`` is for text runs)."""
    words = req.tokens if req.tokens is not None else req.text.split()
    if req.target != "predicted":
        raise RequestError(
            f"target={req.target!r} is for text-classification runs; this run tags tokens and explains "
            "one span's confidence: drop target, send span (and label for its entity type)"
        )
    if req.span is None:
        raise RequestError(
            "token-classification runs explain one span: send span with its words as they appear in "
            f"the sentence, e.g. span={words[-1]!r}"
        )

    try:
        find_span(words, req.span)
    except ConfigError as err:
        raise RequestError(str(err)) from None
    types = entity_types(labels)
    if req.label is not None and req.label not in types:
        raise RequestError(
            f"label={req.label!r} is not an entity type of this run: choose one of {_shown(types)}, or "
            "omit it to explain the span as the type predicted for it"
        )
    return {"span": req.span, "label": req.label}


@dataclass(frozen=True)
class GenerateOptions:
    """How to answer one /v1/generate request (``caveat.generate.answer.answer_question``'s settings)."""

    sampling: SamplingConfig
    estimators: tuple[str, ...]


def default_estimators(samples: int) -> list[str]:
    """Every estimator the samples allow that does not ask the model again (p_true, verbalised: one more
    model call each, per request)."""

    return [n for n in parse_estimators("all", samples=samples) if "lm" not in ESTIMATORS.get(n).needs]


def _check_timeout(timeout_s: float | None, settings: ServiceSettings) -> None:
    """A request's deadline may be shorter than the service's, not longer."""
    if timeout_s is not None and timeout_s > settings.request_timeout_s:
        raise RequestError(
            f"timeout_s={timeout_s:g} is more than this service's limit of {settings.request_timeout_s:g} s: "
            "ask for less, or leave timeout_s out to get the limit"
        )


def _same_as_policy(name: str, asked: int | None, fitted: int) -> None:
    if asked is not None and asked != fitted:
        raise RequestError(
            f"{name}={asked} differs from the generation policy's {name}={fitted}: its threshold holds "
            f"only for the answers it was calibrated on; omit {name} (or send {fitted})"
        )


def check_generate(
    req: GenerateRequest, settings: ServiceSettings, *, policy: GenerationPolicy | None = None
) -> GenerateOptions:
    """Options of a valid generation request (with a policy: its sampling settings, and its estimator among
    the estimators); raises ``RequestError`` (422) otherwise."""

    for name, text, limit in (
        ("question", req.question, settings.max_question_chars),
        ("context", req.context or "", settings.max_text_chars),
    ):
        if len(text) > limit:
            raise RequestError(
                f"{name} has {len(text)} characters, over this service's limit of {limit}: send a shorter {name}"
            )
    if policy is not None:
        _same_as_policy("samples", req.samples, policy.sampling.samples)
        _same_as_policy("max_new_tokens", req.max_new_tokens, policy.sampling.max_new_tokens)
        sampling = policy.sampling
    else:
        samples = min(DEFAULT_GENERATE_SAMPLES, settings.max_generate_samples) if req.samples is None else req.samples
        if samples > settings.max_generate_samples:
            raise RequestError(
                f"samples={samples} is more than this service's limit of {settings.max_generate_samples}: "
                f"use 2..{settings.max_generate_samples}"
            )
        tokens = (
            min(DEFAULT_MAX_NEW_TOKENS, settings.max_generate_tokens)
            if req.max_new_tokens is None
            else req.max_new_tokens
        )
        if tokens > settings.max_generate_tokens:
            raise RequestError(
                f"max_new_tokens={tokens} is more than this service's limit of "
                f"{settings.max_generate_tokens}: use 1..{settings.max_generate_tokens}"
            )
        sampling = SamplingConfig(samples=samples, max_new_tokens=tokens)
    _check_timeout(req.timeout_s, settings)
    spec = default_estimators(sampling.samples) if req.estimators is None else req.estimators
    try:
        names = estimator_names(spec, samples=sampling.samples, policy=policy)
    except ConfigError as err:
        raise RequestError(f"estimators: {err}") from None
    return GenerateOptions(sampling=sampling, estimators=tuple(names))
