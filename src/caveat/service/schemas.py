"""Request and response bodies of the HTTP API (pydantic). Static checks live here (types, empty
inputs, ranges that do not depend on the run); limits that depend on the settings or the run are
checked in ``service/validation.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METHODS = ("deterministic", "mc_dropout")
DEFAULT_SAMPLES = 10
DEFAULT_K = 5


def _check_unicode(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where} is not valid Unicode ({err.reason} at character {err.start}): send UTF-8 text") from None


def _check_texts(texts: list[str] | None) -> list[str] | None:
    if texts is None:
        return None
    if not texts:
        raise ValueError('texts is empty: send at least one text, e.g. {"texts": ["where is my parcel"]}')
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"texts[{i}] is empty or only whitespace: send non-empty texts")
        _check_unicode(text, f"texts[{i}]")
    return texts


class PredictRequest(BaseModel):
    """A batch of inputs and how to predict them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"texts": ["where is my parcel", "cancel my card"], "k": 3},
                     {"texts": ["where is my parcel"], "method": "mc_dropout", "samples": 10, "explain": True}]})

    texts: list[str] | None = Field(None, strict=True, description="Texts to predict (or whitespace-split sentences "
                                    "for token-classification runs). Send texts or tokens, not both.")
    tokens: list[list[str]] | None = Field(None, strict=True, description="Pre-split sentences (token-classification "
                                           "runs only): a list of word lists.")
    method: Literal["deterministic", "mc_dropout"] = Field("deterministic", description="deterministic: one pass (the "
                                                           "calibrated one). mc_dropout: also K dropout samples.")
    samples: int | None = Field(None, strict=True, ge=2, description=f"MC dropout samples K (method=mc_dropout "
                                f"only; default {DEFAULT_SAMPLES}).")
    k: int | None = Field(None, strict=True, ge=1, description=f"Probabilities of the k most likely labels, 1 to the run's "
                          f"number of labels (default {DEFAULT_K}, or all labels when fewer).")
    explain: bool = Field(False, strict=True, description="Add integrated-gradients word attributions for the predicted label.")

    @field_validator("texts")
    @classmethod
    def _texts(cls, texts: list[str] | None) -> list[str] | None:
        return _check_texts(texts)

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, tokens: list[list[str]] | None) -> list[list[str]] | None:
        if tokens is None:
            return None
        if not tokens:
            raise ValueError('tokens is empty: send at least one sentence, e.g. {"tokens": [["alice", "went", "home"]]}')
        for i, words in enumerate(tokens):
            if not words:
                raise ValueError(f"tokens[{i}] has no words: send at least one word per sentence")
            for j, word in enumerate(words):
                if not word.strip():
                    raise ValueError(f"tokens[{i}][{j}] is empty or only whitespace: send non-empty words")
                _check_unicode(word, f"tokens[{i}][{j}]")
        return tokens

    @model_validator(mode="after")
    def _one_input_kind(self) -> "PredictRequest":
        if (self.texts is None) == (self.tokens is None):
            raise ValueError("send exactly one of texts (a list of strings) or tokens (a list of word lists, for "
                             "token-classification runs)" + ("; got both" if self.texts is not None else ""))
        if self.samples is not None and self.method != "mc_dropout":
            raise ValueError(f"samples={self.samples} is only used with method='mc_dropout': drop samples or set the method")
        return self

    @property
    def inputs(self) -> list:
        return self.texts if self.texts is not None else self.tokens


class ExplainRequest(BaseModel):
    """One text to explain."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"text": "where is my parcel"}, {"text": "where is my parcel", "label": "delivery", "steps": 100}]})

    text: str = Field(strict=True, description="The text to explain.")
    label: str | None = Field(None, strict=True, description="Label to explain (default: the predicted one).")
    steps: int = Field(50, strict=True, ge=2, le=1000, description="Integration steps (more: smaller convergence delta, slower).")

    @field_validator("text")
    @classmethod
    def _text(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty or only whitespace: send a non-empty text")
        _check_unicode(text, "text")
        return text


class WordAttribution(BaseModel):
    word: str
    attribution: float = Field(description="Contribution to the explained label's logit (positive: towards it).")


class TokenAttribution(BaseModel):
    token: str
    word: int | None = Field(description="Index into words; null for special tokens.")
    attribution: float


class McDropout(BaseModel):
    """K dropout samples (Gal & Ghahramani 2016); probabilities are their mean, not temperature-scaled."""

    samples: int
    label: str
    probability: float
    probabilities: dict[str, float]
    uncertainty: dict[str, float] = Field(description="entropy, expected_entropy, mutual_information, variance of the samples.")


class TextPrediction(BaseModel):
    """One text's prediction: the same keys as ``caveat predict`` (calibrated probabilities when the run is calibrated)."""

    text: str
    label: str
    probability: float
    probabilities: dict[str, float] = Field(description="The k most likely labels, most likely first.")
    uncertainty: dict[str, float] | None = Field(None, description="Scores the run was calibrated with; higher = less trustworthy.")
    prediction_set: list[str] | None = Field(None, description="The conformal prediction set.")
    decision: Literal["answer", "abstain", "route"] | None = None
    reason: str | None = Field(None, description="Why this decision (which score, which threshold).")
    mc_dropout: McDropout | None = None
    attributions: list[WordAttribution] | None = None


class Span(BaseModel):
    text: str
    label: str
    start: int = Field(description="First word (0-based).")
    end: int = Field(description="One past the last word.")
    probability: float = Field(description="Raw span confidence: the least probable of its words' tags (as caveat predict).")
    confidence: float | None = Field(None, description="Calibrated span confidence (calibrated runs).")
    decision: Literal["keep", "flag"] | None = Field(None, description="keep: within the run's span-error guarantee.")
    reason: str | None = None


class TokenPrediction(BaseModel):
    """One sentence's entity spans (token-classification runs)."""

    text: str
    tokens: list[str]
    tags: list[str]
    spans: list[Span]
    reason: str | None = None


class PredictResponse(BaseModel):
    run: str
    task: Literal["text-classification", "token-classification"]
    method: Literal["deterministic", "mc_dropout"]
    calibrated: bool
    predictions: list[TextPrediction] | list[TokenPrediction]


class ExplainResponse(BaseModel):
    text: str
    label: str = Field(description="The explained label.")
    predicted_label: str
    method: Literal["integrated_gradients"] = "integrated_gradients"
    target: Literal["logit"] = "logit"
    baseline: str = "[PAD] for every non-special sub-token"
    steps: int
    output: float = Field(description="f(x): the explained label's logit on the text.")
    baseline_output: float = Field(description="f(baseline): the same logit on the baseline.")
    delta: float = Field(description="Convergence delta: sum of attributions - (output - baseline_output).")
    words: list[WordAttribution]
    tokens: list[TokenAttribution]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    run: str
    task: str
    calibrated: bool
    detail: str | None = None


class Problem(BaseModel):
    """Every 4xx body: ``detail`` says what was wrong and what to change."""

    detail: str
    errors: list[dict] | None = None
