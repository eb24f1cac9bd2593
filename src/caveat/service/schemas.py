"""Request and response bodies of the HTTP API (pydantic). Static checks live here (types, empty
inputs, ranges that do not depend on the run); limits that depend on the settings or the run are
checked in ``service/validation.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

METHODS = ("deterministic", "mc_dropout")
DEFAULT_SAMPLES = 10
DEFAULT_K = 5
DEFAULT_GENERATE_SAMPLES = 8
DEFAULT_MAX_NEW_TOKENS = 32


def _check_unicode(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{where} is not valid Unicode ({err.reason} at character {err.start}): send UTF-8 text"
        ) from None


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

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"texts": ["where is my parcel", "cancel my card"], "k": 3},
                {"texts": ["where is my parcel"], "method": "mc_dropout", "samples": 10, "explain": True},
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
        if self.samples is not None and self.method != "mc_dropout":
            raise ValueError(
                f"samples={self.samples} is only used with method='mc_dropout': drop samples or set the method"
            )
        return self

    @property
    def inputs(self) -> list:
        return self.texts if self.texts is not None else self.tokens


EXPLAIN_METHODS = ("ig", "shap", "lime", "occlusion")
DEFAULT_MAX_EVALS = 500
DEFAULT_LIME_SAMPLES = 1000
METHOD_OPTIONS = {"steps": "ig", "max_evals": "shap", "samples": "lime"}  # each method's own cost option


class ExplainRequest(BaseModel):
    """One input and what to explain on it. Every method explains the same scalar: the calibrated
    (temperature-scaled) probability of a label, an uncertainty score, or (NER) a span's confidence."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "where is my parcel"},
                {"text": "where is my parcel", "target": "delivery", "method": "ig", "steps": 100},
                {"text": "where is my parcel", "target": "uncertainty", "method": "occlusion"},
                {"tokens": ["alice", "flew", "to", "paris"], "span": "paris", "method": "shap", "max_evals": 300},
            ]
        },
    )

    text: str | None = Field(
        None,
        strict=True,
        description="The text to explain (or a whitespace-split sentence for "
        "token-classification runs). Send text or tokens, not both.",
    )
    tokens: list[str] | None = Field(
        None, strict=True, description="A pre-split sentence (token-classification runs only): its words."
    )
    method: Literal["ig", "shap", "lime", "occlusion"] = Field(
        "ig",
        description="ig: integrated gradients over the embeddings (Sundararajan et al. 2017); shap: Owen values "
        "of shap's partition explainer; lime: LIME's local linear model over random word deletions; occlusion: the "
        "drop when each word is deleted.",
    )
    target: str = Field(
        "predicted",
        strict=True,
        description="Text-classification runs: what to explain: 'predicted' "
        "(the predicted label's probability), a label name (its probability), 'uncertainty' (with ig: "
        "'least_confidence', 1 - the predicted label's probability; with the other methods: 'entropy' of the "
        "calibrated prediction), 'least_confidence' or 'entropy' by name, or 'mutual_information' (under MC "
        "dropout; not with ig). Token-classification runs explain a span: leave it 'predicted'.",
    )
    label: str | None = Field(
        None,
        strict=True,
        description="Text-classification runs: a label to explain, the same "
        "as target=<label>. Token-classification runs: the entity type to explain the span as "
        "(default: the type predicted for it).",
    )
    span: str | None = Field(
        None,
        strict=True,
        description="Token-classification runs (required there): the span's "
        "words as they appear in the sentence, e.g. 'new york'. Its words stay fixed; only its "
        "context is explained.",
    )
    steps: int | None = Field(
        None,
        strict=True,
        ge=2,
        le=1000,
        description="method=ig: integration steps (more: smaller "
        "convergence delta, proportionally slower; default: the service's explain_steps).",
    )
    max_evals: int | None = Field(
        None, strict=True, ge=2, le=5000, description=f"method=shap: most inputs scored (default {DEFAULT_MAX_EVALS})."
    )
    samples: int | None = Field(
        None,
        strict=True,
        ge=2,
        le=10_000,
        description=f"method=lime: random deletions its linear model is fitted on (default {DEFAULT_LIME_SAMPLES}).",
    )
    seed: int = Field(
        0, strict=True, ge=0, description="Random seed (lime's deletions; ig, shap and occlusion are deterministic)."
    )

    @field_validator("text")
    @classmethod
    def _text(cls, text: str | None) -> str | None:
        if text is None:
            return None
        if not text.strip():
            raise ValueError("text is empty or only whitespace: send a non-empty text")
        _check_unicode(text, "text")
        return text

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, tokens: list[str] | None) -> list[str] | None:
        if tokens is None:
            return None
        if not tokens:
            raise ValueError('tokens is empty: send the sentence\'s words, e.g. {"tokens": ["alice", "went", "home"]}')
        for j, word in enumerate(tokens):
            if not word.strip():
                raise ValueError(f"tokens[{j}] is empty or only whitespace: send non-empty words")
            _check_unicode(word, f"tokens[{j}]")
        return tokens

    @field_validator("target", "label", "span")
    @classmethod
    def _names(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError(f"{info.field_name} is empty or only whitespace: send a name, or omit it")
        _check_unicode(value, info.field_name)
        return value

    @model_validator(mode="after")
    def _one_input_and_its_method_options(self) -> ExplainRequest:
        if (self.text is None) == (self.tokens is None):
            raise ValueError(
                "send exactly one of text (a string) or tokens (a list of words, for token-classification "
                "runs)" + ("; got both" if self.text is not None else "")
            )
        for option, method in METHOD_OPTIONS.items():
            value = getattr(self, option)
            if value is not None and self.method != method:
                raise ValueError(
                    f"{option}={value} is only used with method={method!r} (this request's method is "
                    f"{self.method!r}): drop {option} or set the method"
                )
        return self

    @property
    def input(self) -> str | list[str]:
        return self.text if self.text is not None else self.tokens


class WordAttribution(BaseModel):
    word: str
    attribution: float = Field(
        description="Contribution to the explained quantity (here the predicted label's "
        "calibrated probability); positive: raises it."
    )


class ExplainedWord(BaseModel):
    word: str
    attribution: float = Field(
        description="Contribution to the explained value; positive: raises it. 0 for words that are not features."
    )
    feature: bool = Field(description="Whether the word was explained; false for a span's own words (held fixed).")


class ExplainTarget(BaseModel):
    """What was explained; the fields present depend on ``kind``."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["label", "uncertainty", "span"] = Field(
        description="label: a label's probability; uncertainty: an uncertainty score; span: a span's confidence (NER)."
    )
    name: str = Field(description="A short description of the explained quantity.")
    label: str | None = Field(None, description="kind=label: the explained label; kind=span: the entity type.")
    predicted: str | None = Field(
        None,
        description="The predicted label (kind=span: the type predicted for the span, "
        "null when it is not a predicted span).",
    )
    score: str | None = Field(None, description="kind=uncertainty: least_confidence, entropy or mutual_information.")
    span: str | None = Field(None, description="kind=span: the span's words.")
    start: int | None = Field(None, description="kind=span: its first word (0-based).")
    end: int | None = Field(None, description="kind=span: one past its last word.")
    temperature: float | None = Field(
        None, description="The temperature the probabilities are scaled by (1: uncalibrated)."
    )
    calibrated: bool | None = Field(None, description="Whether that temperature was fitted by caveat calibrate.")


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
    task: Literal["text-classification", "token-classification"]
    method: Literal["deterministic", "mc_dropout"]
    calibrated: bool
    predictions: list[TextPrediction] | list[TokenPrediction]


class ExplainResponse(BaseModel):
    """Word attributions of one explained quantity (``caveat.explain``)."""

    text: str = Field(description="The explained input (a sentence's words joined by spaces).")
    method: Literal["ig", "shap", "lime", "occlusion"]
    target: ExplainTarget
    value: float = Field(description="f(x): the explained quantity on the whole input.")
    words: list[ExplainedWord] = Field(description="Every word of the input, in order, with its attribution.")
    evaluations: int = Field(
        description="Inputs the model scored for this explanation (ig: its interpolation points "
        "with their backward passes, plus the input and the baseline)."
    )
    seconds: float = Field(description="Wall time of the explanation.")
    details: dict = Field(
        description="What only this method has: ig: steps, baseline_value (f of the all-[PAD] "
        "baseline), delta (sum of attributions - (value - baseline_value)), tokens, token_words, "
        "token_attributions; shap: base_value, max_evals; lime: samples, r2, intercept."
    )


class GenerateRequest(BaseModel):
    """One question (and optionally a passage) for the causal LM of /v1/generate."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "who wrote the origin of species"},
                {
                    "question": "in what country is normandy?",
                    "context": "The Normans gave their name to Normandy, a region in France.",
                    "samples": 8,
                    "max_new_tokens": 16,
                    "estimators": ["msp", "semantic_entropy"],
                },
            ]
        },
    )

    question: str = Field(strict=True, description="The question.")
    context: str | None = Field(
        None,
        strict=True,
        description="A passage to answer from (reading comprehension); it goes into the prompt before the question.",
    )
    samples: int | None = Field(
        None,
        strict=True,
        ge=2,
        description=f"K sampled answers besides the greedy one, all "
        f"from one generate call (default {DEFAULT_GENERATE_SAMPLES}). With a generation "
        "policy: omit it, or send the policy's own.",
    )
    max_new_tokens: int | None = Field(
        None,
        strict=True,
        ge=1,
        description=f"Longest answer, in tokens (default "
        f"{DEFAULT_MAX_NEW_TOKENS}). With a generation policy: omit it, or send the "
        "policy's own.",
    )
    estimators: list[str] | None = Field(
        None,
        strict=True,
        min_length=1,
        description="Uncertainty estimators to "
        "compute (caveat.generate.estimators). Default: every one that does not "
        "ask the model again (all but p_true and verbalised). A policy's estimator "
        "is always computed.",
    )

    @field_validator("question", "context")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                f"{info.field_name} is empty or only whitespace: send a non-empty text"
                + (", or omit it" if info.field_name == "context" else "")
            )
        _check_unicode(value, info.field_name)
        return value

    @field_validator("estimators")
    @classmethod
    def _estimator_names(cls, names: list[str] | None) -> list[str] | None:
        for i, name in enumerate(names or ()):
            if not name.strip():
                raise ValueError(f'estimators[{i}] is empty or only whitespace: send estimator names, e.g. "msp"')
        return names


class GenerateResponse(BaseModel):
    """A generated answer with its uncertainty and, under a generation policy, the decision."""

    model: str = Field(description="The causal LM that answered.")
    answer: str = Field(description="The greedy answer.")
    uncertainty: dict[str, float] = Field(description="Each estimator's score; higher = more uncertain.")
    samples: list[str] = Field(description="The K sampled answers the sample-based estimators compare.")
    decision: Literal["answer", "abstain"] | None = Field(
        description="Under a generation policy: answer, or abstain "
        "because answering would break its risk bound; else null."
    )
    reason: str = Field(description="Why this decision (estimator, threshold, guarantee), or how to get one.")
    estimator: str | None = Field(description="The estimator the decision thresholded (null without a policy).")
    seconds: float = Field(description="Wall time of generating the answers and scoring them.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    run: str
    task: str
    calibrated: bool
    detail: str | None = None
    generation: str | None = Field(
        None,
        description="POST /v1/generate: 'ready', 'loading the language model' or "
        "why it failed; null when the service has no language model.",
    )
    calibration: str | None = Field(
        None,
        description="SHA-256 of the live calibration (caveat.json's calibration, then calibration.safetensors); "
        "it changes when a reload swaps in another one. Null: uncalibrated.",
    )


class ReloadResponse(BaseModel):
    """The calibration a reload swapped in."""

    calibration: str | None = Field(description="SHA-256 of the calibration now live (null: uncalibrated).")
    previous: str | None = Field(description="SHA-256 of the calibration it replaced.")
    calibrated: bool


class Problem(BaseModel):
    """Every 4xx body: ``detail`` says what was wrong and what to change."""

    detail: str
    errors: list[dict] | None = None
