"""/v1/explain: what to explain and the attributions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from caveat.service.schemas.common import _check_unicode

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
