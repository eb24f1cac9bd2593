"""What the bodies share: the text checks, word attributions (predict and explain), health and readiness,
reload, and the 4xx ``Problem``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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


class WordAttribution(BaseModel):
    word: str
    attribution: float = Field(
        description="Contribution to the explained quantity (here the predicted label's "
        "calibrated probability); positive: raises it."
    )


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
    """Every error body (4xx and 5xx): ``detail`` says what was wrong and what to change."""

    detail: str
    errors: list[dict] | None = None
    request_id: str | None = Field(
        None, description="The request's ID (its X-Request-ID header, or one the service made): quote it in reports."
    )
