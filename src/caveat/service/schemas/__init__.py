"""Request and response bodies of the HTTP API (pydantic). Static checks live here (types, empty
inputs, ranges that do not depend on the run); limits that depend on the settings or the run are
checked in ``service/validation.py``.

One module per route (``predict``, ``explain``, ``generate``) and ``common`` for what they share; every name is
imported from here."""

from caveat.service.schemas.common import Health, Problem, Readiness, ReloadResponse, WordAttribution
from caveat.service.schemas.explain import (
    DEFAULT_LIME_SAMPLES,
    DEFAULT_MAX_EVALS,
    EXPLAIN_METHODS,
    METHOD_OPTIONS,
    ExplainedWord,
    ExplainRequest,
    ExplainResponse,
    ExplainTarget,
)
from caveat.service.schemas.generate import (
    DEFAULT_GENERATE_SAMPLES,
    DEFAULT_MAX_NEW_TOKENS,
    GenerateRequest,
    GenerateResponse,
)
from caveat.service.schemas.predict import (
    DEFAULT_K,
    DEFAULT_SAMPLES,
    METHODS,
    Certificate,
    McDropout,
    PredictRequest,
    PredictResponse,
    Span,
    TextPrediction,
    TokenPrediction,
)

__all__ = [
    "Certificate",
    "DEFAULT_GENERATE_SAMPLES",
    "DEFAULT_K",
    "DEFAULT_LIME_SAMPLES",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_SAMPLES",
    "EXPLAIN_METHODS",
    "METHODS",
    "METHOD_OPTIONS",
    "ExplainRequest",
    "ExplainResponse",
    "ExplainTarget",
    "ExplainedWord",
    "GenerateRequest",
    "GenerateResponse",
    "Health",
    "McDropout",
    "PredictRequest",
    "PredictResponse",
    "Problem",
    "Readiness",
    "ReloadResponse",
    "Span",
    "TextPrediction",
    "TokenPrediction",
    "WordAttribution",
]
