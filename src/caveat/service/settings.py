"""Service settings: typed, built from CLI flags over ``CAVEAT_*`` environment variables, never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from caveat.errors import ConfigError

ENV_PREFIX = "CAVEAT_"


class ServiceSettings(BaseModel):
    """Everything ``caveat serve`` can be told. Each field ``name`` can also come from the
    environment variable ``CAVEAT_<NAME>`` (e.g. ``CAVEAT_API_KEY``); flags win over the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_dir: Path = Field(description="Run directory to serve (fixed for the life of the process).")
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes the service to the network.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes on the one port, each with its own model (memory grows with each); "
        "/metrics sums their counters.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, /v1/* and /metrics need the header X-API-Key. Several keys, comma-separated "
        "(e.g. old,new while rotating), are each accepted.",
    )
    allow_uncalibrated: bool = Field(
        False,
        description="Serve a run that caveat calibrate has not fitted "
        "(labels and probabilities only: no prediction set, no decision).",
    )
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most inputs grouped into one forward pass.")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="Longest wait for more requests to join a batch.")
    max_queue: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Most requests waiting for the model; one more is refused with 503 and Retry-After "
        "(default: 8 x max_batch_size).",
    )
    max_queue_wait_s: float | None = Field(
        1.0,
        gt=0,
        le=3600,
        description="Refuse a request with 503 and Retry-After when the inputs waiting ahead of it would keep it "
        "queued longer than this at the model's recent pace: a bound on queueing latency whatever the model's "
        "speed. Empty (CAVEAT_MAX_QUEUE_WAIT_S=): no such limit.",
    )
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Deadline of a /v1/predict, /v1/explain or /v1/generate request, queue and model together; "
        "past it: 504. A /v1/predict or /v1/generate request may ask for less (timeout_s).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A request body still incomplete this long after the request began is refused with 408 and "
        "its connection closed (a client trickling bytes holds no task for long).",
    )
    max_connections: int | None = Field(
        1000,
        ge=1,
        description="Most connections and requests held at once (uvicorn's limit_concurrency); more get 503 at "
        "once. Bounds what slow clients can hold. Empty (CAVEAT_MAX_CONNECTIONS=): no limit.",
    )
    max_texts: int = Field(128, ge=1, le=100_000, description="Most inputs per request.")
    max_text_chars: int = Field(10_000, ge=1, description="Most characters per input.")
    max_samples: int = Field(50, ge=2, le=1000, description="Most MC-dropout samples a request may ask for.")
    max_explain_texts: int = Field(8, ge=1, description="Most inputs of a /v1/predict request with explain=true.")
    explain_steps: int = Field(50, ge=2, le=1000, description="Integration steps of explain=true in /v1/predict.")
    max_certify_texts: int = Field(
        8, ge=1, description="Most inputs of a /v1/predict request with certify=true (111 model passes each)."
    )
    lm: str | None = Field(
        None,
        description="A causal LM for POST /v1/generate: 'default' (the packaged "
        "SmolLM2-135M-Instruct) or a local model folder. Unset: no /v1/generate.",
    )
    generation_policy: Path | None = Field(
        None,
        description="A policy JSON from caveat generate-calibrate: /v1/generate "
        "uses its model, sampling settings and prompt template, and every answer "
        "gets answer/abstain under its risk bound. lm may be left unset.",
    )
    max_question_chars: int = Field(
        2000,
        ge=1,
        description="Most characters of a /v1/generate question (its context passage may have max_text_chars).",
    )
    max_generate_samples: int = Field(
        32, ge=2, le=1000, description="Most sampled answers a /v1/generate request may ask for."
    )
    max_generate_tokens: int = Field(
        128, ge=1, le=4096, description="Most new tokens per answer a /v1/generate request may ask for."
    )
    drift_window: int = Field(500, ge=10, description="Recent inputs whose uncertainty scores the drift test uses.")
    drift_min_inputs: int = Field(100, ge=5, description="Inputs in the window before the drift alarm may fire.")
    drift_alpha: float = Field(
        0.01, gt=0, lt=1, description="The drift alarm fires when the KS test's p-value is below this."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for inference, per worker (default: all CPUs but one, which is left to the "
        "event loop, shared out among the workers; torch's own default oversubscribes).",
    )
    log_inputs: Path | None = Field(
        None,
        description="Append every /v1/predict input to this file as one JSON line with what was served for it "
        "(time, text, label, uncertainty score, decision; never a header or the API key). Unset: no input log.",
    )
    log_max_bytes: int = Field(
        50_000_000, ge=1, description="Size at which the input log is rotated (PATH -> PATH.1 -> PATH.2 ...)."
    )
    log_backups: int = Field(5, ge=1, le=1000, description="Rotated input logs kept (PATH.1 .. PATH.N).")
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Origins a browser may call the API from (comma-separated, e.g. https://app.example.com); "
        "empty: no CORS headers, so browsers refuse cross-origin calls.",
    )
    docs: bool = Field(True, description="Serve /docs, /redoc and /openapi.json (off: all three are 404).")
    shutdown_delay_s: float = Field(
        0.0,
        ge=0,
        le=600,
        description="After SIGTERM, keep serving this long with /readyz at 503 so a load balancer stops sending, "
        "then stop accepting connections.",
    )
    shutdown_grace_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Then wait at most this long for requests in flight to finish before exiting.",
    )
    log_level: str = Field("info", description="uvicorn log level: critical, error, warning, info, debug.")
    access_log: bool = Field(True, description="Log one line per request.")

    @field_validator(
        "api_key", "lm", "generation_policy", "log_inputs", "max_connections", "max_queue_wait_s", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _keys_as_one_secret(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # several keys given as a list: one comma-separated secret
            value = ",".join(str(v.get_secret_value() if isinstance(v, SecretStr) else v) for v in value)
        if isinstance(value, str) and not any(k.strip() for k in value.split(",")):
            return None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if value.lower() not in levels:
            raise ValueError(f"log_level must be one of {', '.join(levels)}; got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _window_holds_minimum(self) -> ServiceSettings:
        if self.drift_min_inputs > self.drift_window:
            raise ValueError(
                f"drift_min_inputs ({self.drift_min_inputs}) must be <= drift_window ({self.drift_window}); "
                "lower it or widen the window"
            )
        return self

    @property
    def api_keys(self) -> tuple[bytes, ...]:
        """Every accepted key (``api_key`` split at commas), as bytes; empty when the API is open."""
        if self.api_key is None:
            return ()
        return tuple(k.strip().encode() for k in self.api_key.get_secret_value().split(",") if k.strip())

    @property
    def queue_limit(self) -> int:
        """``max_queue``, or 8 batches' worth of requests."""
        return self.max_queue or 8 * self.max_batch_size

    @property
    def inference_threads(self) -> int:
        """``torch_threads``, or all CPUs but one, shared out among the workers."""
        return self.torch_threads or max(1, ((os.cpu_count() or 2) - 1) // self.workers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **values: Any) -> ServiceSettings:
        """Settings from ``CAVEAT_<NAME>`` variables of ``environ`` (default ``os.environ``), overridden by
        the keyword ``values`` that are not None (CLI flags). Invalid values raise ``ConfigError``
        naming the variable or flag."""
        environ = os.environ if environ is None else environ
        merged: dict[str, Any] = {}
        source: dict[str, str] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in environ:
                merged[name], source[name] = environ[key], f"environment variable {key}"
        for name, value in values.items():
            if value is not None:
                merged[name], source[name] = value, f"--{name.replace('_', '-')}"
        try:
            return cls.model_validate(merged)
        except ValidationError as err:
            problems = []
            for e in err.errors():
                name = str(e["loc"][0]) if e["loc"] else ""
                where = source.get(name, name or "settings")
                msg = e["msg"].removeprefix("Value error, ")
                shown = name and name != "api_key" and "input" in e  # never echo the key
                problems.append(f"{where}: {msg}" + (f" (got {e['input']!r})" if shown else ""))
            raise ConfigError("invalid service settings: " + "; ".join(problems)) from None
