"""``caveat serve``: the HTTP service for one run directory (FastAPI on uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _opt(help: str, *names: str):
    """An option whose default comes from the environment (``CAVEAT_<NAME>``), then from ServiceSettings."""
    return typer.Option(*names, help=help, show_default=False)


def serve(
    run: Annotated[Path, typer.Argument(help="Run directory to serve (calibrated with caveat calibrate).")],
    host: Annotated[Optional[str], _opt("Interface to bind (env CAVEAT_HOST; default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], _opt("TCP port (env CAVEAT_PORT; default 8000).")] = None,
    workers: Annotated[
        Optional[int],
        _opt(
            "Worker processes on the port, each with its own model; /metrics sums them (env CAVEAT_WORKERS; "
            "default 1).",
            "--workers",
        ),
    ] = None,
    allow_uncalibrated: Annotated[
        Optional[bool],
        _opt(
            "Serve a run without caveat calibrate's fit: labels and probabilities, no prediction sets or decisions "
            "(env CAVEAT_ALLOW_UNCALIBRATED; default: refuse).",
            "--allow-uncalibrated/--require-calibrated",
        ),
    ] = None,
    max_batch_size: Annotated[
        Optional[int], _opt("Most inputs per forward pass (env CAVEAT_MAX_BATCH_SIZE; default 32).")
    ] = None,
    max_wait_ms: Annotated[
        Optional[float], _opt("Longest wait for a batch to fill (env CAVEAT_MAX_WAIT_MS; default 5).")
    ] = None,
    max_queue: Annotated[
        Optional[int],
        _opt("Most requests waiting for the model, then 503 (env CAVEAT_MAX_QUEUE; default 8 x max batch size)."),
    ] = None,
    max_queue_wait_s: Annotated[
        Optional[float],
        _opt(
            "Refuse (503) a request that would wait longer than this for the model at its recent pace "
            "(env CAVEAT_MAX_QUEUE_WAIT_S; default 1).",
            "--max-queue-wait",
        ),
    ] = None,
    request_timeout_s: Annotated[
        Optional[float],
        _opt("Deadline of a request, then 504 (env CAVEAT_REQUEST_TIMEOUT_S; default 60).", "--request-timeout"),
    ] = None,
    body_timeout_s: Annotated[
        Optional[float],
        _opt(
            "A body not received this long after the request began: 408 (env CAVEAT_BODY_TIMEOUT_S; default 30).",
            "--body-timeout",
        ),
    ] = None,
    max_connections: Annotated[
        Optional[int],
        _opt("Most connections held at once, then 503 (env CAVEAT_MAX_CONNECTIONS; default 1000)."),
    ] = None,
    max_texts: Annotated[Optional[int], _opt("Most inputs per request (env CAVEAT_MAX_TEXTS; default 128).")] = None,
    max_text_chars: Annotated[
        Optional[int], _opt("Most characters per input (env CAVEAT_MAX_TEXT_CHARS; default 10000).")
    ] = None,
    lm: Annotated[
        Optional[str],
        _opt(
            "A causal LM for POST /v1/generate: 'default' (packaged SmolLM2-135M-Instruct) or a local model folder "
            "(env CAVEAT_LM; default: no /v1/generate).",
            "--lm",
        ),
    ] = None,
    generation_policy: Annotated[
        Optional[Path],
        _opt(
            "A policy from caveat generate-calibrate for /v1/generate: its model, sampling and template, and "
            "answer/abstain under its risk bound (env CAVEAT_GENERATION_POLICY).",
            "--generation-policy",
        ),
    ] = None,
    drift_window: Annotated[
        Optional[int], _opt("Recent inputs in the drift test (env CAVEAT_DRIFT_WINDOW; default 500).")
    ] = None,
    drift_min_inputs: Annotated[
        Optional[int], _opt("Inputs before the drift alarm may fire (env CAVEAT_DRIFT_MIN_INPUTS; default 100).")
    ] = None,
    drift_alpha: Annotated[
        Optional[float], _opt("Drift alarm when the KS p-value is below this (env CAVEAT_DRIFT_ALPHA; default 0.01).")
    ] = None,
    torch_threads: Annotated[
        Optional[int], _opt("CPU threads for inference (env CAVEAT_TORCH_THREADS; default: all CPUs but one).")
    ] = None,
    log_inputs: Annotated[
        Optional[Path],
        _opt(
            "Append every /v1/predict input to this file as a JSON line: time, text, label, uncertainty score, "
            "decision; never headers or the API key (env CAVEAT_LOG_INPUTS; default: no log).",
            "--log-inputs",
        ),
    ] = None,
    log_max_bytes: Annotated[
        Optional[int],
        _opt("Rotate the input log at this size: PATH -> PATH.1 (env CAVEAT_LOG_MAX_BYTES; default 50000000)."),
    ] = None,
    log_backups: Annotated[
        Optional[int], _opt("Rotated input logs kept, PATH.1 .. PATH.N (env CAVEAT_LOG_BACKUPS; default 5).")
    ] = None,
    cors_origins: Annotated[
        Optional[str],
        _opt("Origins browsers may call from, comma-separated (env CAVEAT_CORS_ORIGINS; default: none, no CORS)."),
    ] = None,
    docs: Annotated[
        Optional[bool],
        _opt("Serve /docs, /redoc and /openapi.json (env CAVEAT_DOCS; default on).", "--docs/--no-docs"),
    ] = None,
    shutdown_delay_s: Annotated[
        Optional[float],
        _opt(
            "After SIGTERM, serve this long with /readyz at 503 before closing (env CAVEAT_SHUTDOWN_DELAY_S; "
            "default 0).",
            "--shutdown-delay",
        ),
    ] = None,
    shutdown_grace_s: Annotated[
        Optional[float],
        _opt(
            "Then wait at most this long for requests in flight (env CAVEAT_SHUTDOWN_GRACE_S; default 10).",
            "--shutdown-grace",
        ),
    ] = None,
    log_level: Annotated[Optional[str], _opt("uvicorn log level (env CAVEAT_LOG_LEVEL; default info).")] = None,
    access_log: Annotated[
        Optional[bool],
        _opt("One log line per request (env CAVEAT_ACCESS_LOG; default on).", "--access-log/--no-access-log"),
    ] = None,
) -> None:
    """Serve predictions with uncertainty, prediction sets and decisions over HTTP (OpenAPI at /openapi.json).

    The API key is read from CAVEAT_API_KEY only (a flag would show in the process list); several keys,
    comma-separated, are each accepted (for rotation). On SIGTERM /readyz turns 503, requests in flight
    finish within the grace period, and the process exits 0 (with --workers N: in every worker). After
    `caveat calibrate RUN`, send the process SIGHUP (or POST /v1/admin/reload with the key) to serve the new
    calibration without a restart; /readyz shows the live one's fingerprint.
    """
    from caveat import progress
    from caveat.service import ServiceSettings, create_app
    from caveat.service.server import run as run_server
    from caveat.service.workers import serve_workers

    progress.enable(False)  # a request's predictions are not a phase of a command: the access log tells of them

    settings = ServiceSettings.from_env(
        run_dir=run,
        host=host,
        port=port,
        workers=workers,
        allow_uncalibrated=allow_uncalibrated,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_queue_wait_s=max_queue_wait_s,
        request_timeout_s=request_timeout_s,
        body_timeout_s=body_timeout_s,
        max_connections=max_connections,
        max_texts=max_texts,
        max_text_chars=max_text_chars,
        lm=lm,
        generation_policy=generation_policy,
        drift_window=drift_window,
        drift_min_inputs=drift_min_inputs,
        drift_alpha=drift_alpha,
        torch_threads=torch_threads,
        log_inputs=log_inputs,
        log_max_bytes=log_max_bytes,
        log_backups=log_backups,
        cors_origins=cors_origins,
        docs=docs,
        shutdown_delay_s=shutdown_delay_s,
        shutdown_grace_s=shutdown_grace_s,
        log_level=log_level,
        access_log=access_log,
    )
    if settings.workers > 1:
        serve_workers(settings)  # each worker builds its own app; the parent checks the settings first
        return
    app = create_app(settings)  # refuses an uncalibrated run or an unusable policy here, before binding the port
    run_server(app, settings)
