"""/v1/predict: the request and the per-input predictions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from caveat.data.markers import mark, span_problem
from caveat.service.schemas.common import WordAttribution, _check_texts, _check_unicode

METHODS = ("deterministic", "mc_dropout")
DEFAULT_SAMPLES = 10
DEFAULT_K = 5
MAX_SEED = 2**63 - 1


class EntitySpans(BaseModel):
    """The two entities of one text of a relation-classification run, as character offsets (end exclusive)."""

    model_config = ConfigDict(extra="forbid")

    head: tuple[int, int] = Field(description="[start, end) of the head entity (marked <e1>).")
    tail: tuple[int, int] = Field(description="[start, end) of the tail entity (marked <e2>).")


class PredictRequest(BaseModel):
    """A batch of inputs and how to predict them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"texts": ["where is my parcel", "cancel my card"], "k": 3},
                {"texts": ["where is my parcel"], "method": "mc_dropout", "samples": 10, "explain": True},
                {"texts": ["where is my parcel"], "certify": True},
            ]
        },
    )

    texts: list[str] | None = Field(
        None,
        strict=True,
        description="Texts to predict (or whitespace-split sentences "
        "for token-classification runs). Send texts or tokens, not both.",
    )
    tokens: list[list[str]] | None = Field(
        None, strict=True, description="Pre-split sentences (token-classification runs only): a list of word lists."
    )
    spans: list[EntitySpans] | None = Field(
        None,
        description="Relation-classification runs: the head and tail entity of each text as character offsets, one "
        "entry per text (the texts are then plain). Without spans a text marks its entities "
        "<e1>…</e1> and <e2>…</e2> itself.",
    )
    method: Literal["deterministic", "mc_dropout"] = Field(
        "deterministic",
        description="deterministic: one pass (the calibrated one). mc_dropout: also K dropout samples, reported "
        "beside the prediction; the decision stays the calibrated pass's (decided_by).",
    )
    samples: int | None = Field(
        None,
        strict=True,
        ge=2,
        description=f"MC dropout samples K (method=mc_dropout only; default {DEFAULT_SAMPLES}).",
    )
    seed: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=MAX_SEED,
        description="MC dropout seed (method=mc_dropout only). Input i is sampled alone, seeded from (seed, i): "
        "its figures depend on these two only, never on the requests it is batched with. Default: derived from "
        "the request ID; the response says which seed was used.",
    )
    k: int | None = Field(
        None,
        strict=True,
        ge=1,
        description=f"Probabilities of the k most likely labels, 1 to the run's "
        f"number of labels (default {DEFAULT_K}, or all labels when fewer).",
    )
    explain: bool = Field(
        False,
        strict=True,
        description=(
            "Add integrated-gradients word attributions of the predicted label's calibrated probability "
            "(text-classification runs; /v1/explain has every method)."
        ),
    )
    certify: bool = Field(
        False,
        strict=True,
        description="Add certified: SAFER's certificate that the smoothed prediction survives swapping up to 20% "
        "of the words for PPDB synonyms (text-classification runs; 111 model passes per text, at most the "
        "service's max_certify_texts texts). Each text is certified alone, its draws seeded by the text: its "
        "certificate does not depend on the other texts.",
    )

    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Deadline in seconds, queue and model together: past it the answer is 504 and the work "
        "is dropped. At most the service's request_timeout_s (its default).",
    )

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
            raise ValueError(
                'tokens is empty: send at least one sentence, e.g. {"tokens": [["alice", "went", "home"]]}'
            )
        for i, words in enumerate(tokens):
            if not words:
                raise ValueError(f"tokens[{i}] has no words: send at least one word per sentence")
            for j, word in enumerate(words):
                if not word.strip():
                    raise ValueError(f"tokens[{i}][{j}] is empty or only whitespace: send non-empty words")
                _check_unicode(word, f"tokens[{i}][{j}]")
        return tokens

    @model_validator(mode="after")
    def _one_input_kind(self) -> PredictRequest:
        if (self.texts is None) == (self.tokens is None):
            raise ValueError(
                "send exactly one of texts (a list of strings) or tokens (a list of word lists, for "
                "token-classification runs)" + ("; got both" if self.texts is not None else "")
            )
        if self.spans is not None:
            if self.texts is None or len(self.spans) != len(self.texts):
                given = "tokens" if self.texts is None else f"{len(self.texts)} texts"
                raise ValueError(f"spans needs one entry per text; got {len(self.spans)} spans for {given}")
            for i, (text, span) in enumerate(zip(self.texts, self.spans)):
                problem = span_problem(text, span.head, span.tail)
                if problem:
                    raise ValueError(f"spans[{i}]: {problem}; give [start, end) offsets into texts[{i}]")
        if self.samples is not None and self.method != "mc_dropout":
            raise ValueError(
                f"samples={self.samples} is only used with method='mc_dropout': drop samples or set the method"
            )
        if self.seed is not None and self.method != "mc_dropout":
            raise ValueError(f"seed={self.seed} is only used with method='mc_dropout': drop seed or set the method")
        return self

    @property
    def inputs(self) -> list:
        """The texts (marked with their ``spans`` when given) or the token lists."""
        if self.spans is not None:
            return [mark(text, span.head, span.tail) for text, span in zip(self.texts, self.spans)]
        return self.texts if self.texts is not None else self.tokens


class McDropout(BaseModel):
    """K dropout samples (Gal & Ghahramani 2016); probabilities are their mean, not temperature-scaled. Reported
    beside the prediction: they decide nothing (see ``decided_by``)."""

    samples: int
    label: str
    probability: float
    probabilities: dict[str, float]
    uncertainty: dict[str, float] = Field(
        description="entropy, expected_entropy, mutual_information, variance of the samples."
    )


class Certificate(BaseModel):
    """SAFER (Ye et al. 2020): the smoothed classifier reads the text through random synonyms; its prediction is
    certified when ``p_a_lower - tv_bound > 1/2``, and then no swap of up to ``changed`` words changes it (wrong
    with probability at most ``delta``). It certifies stability, not correctness."""

    certified: bool
    prediction: str = Field(description="The smoothed prediction (the majority of the draws).")
    p_a_lower: float = Field(description="Clopper-Pearson lower bound of the top class's probability under the draws.")
    tv_bound: float = Field(description="Bound on how far swapping changed words can shift that probability.")
    changed: int = Field(description="Words an attacker may swap: floor(0.2 x words).")
    words: int
    samples: int = Field(description="Random draws that estimated p_a_lower.")
    delta: float = Field(description="Probability that the certificate is wrong.")


class TextPrediction(BaseModel):
    """One text's prediction: the same keys as ``caveat predict`` (calibrated probabilities when the run is
    calibrated)."""

    text: str
    label: str
    probability: float
    probabilities: dict[str, float] = Field(description="The k most likely labels, most likely first.")
    uncertainty: dict[str, float] | None = Field(
        None, description="Scores the run was calibrated with; higher = less trustworthy."
    )
    prediction_set: list[str] | None = Field(None, description="The conformal prediction set.")
    decision: Literal["answer", "abstain", "route"] | None = None
    reason: str | None = Field(None, description="Why this decision (which score, which threshold).")
    decided_by: Literal["deterministic"] | None = Field(
        None,
        description="method=mc_dropout only: which probabilities the label, probabilities, prediction set and "
        "decision above come from. Always the deterministic, temperature-scaled pass: the calibration's guarantees "
        "were fitted on it and do not hold for MC-dropout averages, which are reported under mc_dropout.",
    )
    mc_dropout: McDropout | None = None
    certified: Certificate | None = Field(None, description="certify=true only.")
    attributions: list[WordAttribution] | None = None


class Span(BaseModel):
    text: str
    label: str
    start: int = Field(description="First word (0-based).")
    end: int = Field(description="One past the last word.")
    probability: float = Field(
        description="Raw span confidence: the least probable of its words' tags (as caveat predict)."
    )
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
    task: Literal["text-classification", "token-classification", "relation-classification"]
    method: Literal["deterministic", "mc_dropout"]
    seed: int | None = Field(None, description="method=mc_dropout: the seed the samples were drawn with.")
    calibrated: bool
    predictions: list[TextPrediction] | list[TokenPrediction]
