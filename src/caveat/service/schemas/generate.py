"""/v1/generate: one question for the causal LM, and the answer with its uncertainty."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from caveat.service.schemas.common import _check_unicode

DEFAULT_GENERATE_SAMPLES = 8
DEFAULT_MAX_NEW_TOKENS = 32


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
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Deadline in seconds, waiting for the model and generating together: past it the answer is 504 "
        "and the work is dropped. At most the service's request_timeout_s (its default).",
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
