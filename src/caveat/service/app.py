"""``create_app(settings)``: the FastAPI application serving one run directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import torch
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline

from caveat._version import __version__
from caveat.service import errors
from caveat.service.batcher import MicroBatcher
from caveat.service.engine import Engine, calibration_fingerprint, drift_reference, open_served_run
from caveat.service.generator import open_generator
from caveat.service.inputlog import InputLog
from caveat.service.metrics import DriftMonitor, Metrics
from caveat.service.middleware import (
    DOCS_ASSETS,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    FrontDoorMiddleware,
    MetricsMiddleware,
)
from caveat.service.routes import admin, explain, generate, health, predict
from caveat.service.settings import ServiceSettings
from caveat.service.state import ServiceState

log = logging.getLogger(__name__)


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app for ``settings.run_dir``; raises ``ConfigError`` at once for a run it will not serve
    (missing, or uncalibrated without ``allow_uncalibrated``), a generation policy it cannot use or an
    input log it cannot open. The model loads in the background at start-up, then the language model of
    /v1/generate if any; /readyz says when each is ready. SIGHUP reloads the calibration (when the
    service runs in the main thread, as under ``caveat serve``)."""
    run, calibration = open_served_run(settings.run_dir, allow_uncalibrated=settings.allow_uncalibrated)
    reference, score = drift_reference(calibration)  # a NER run calibrated before it was stored: set once loaded
    drift = DriftMonitor(
        reference, window=settings.drift_window, min_inputs=settings.drift_min_inputs, alpha=settings.drift_alpha
    )
    metrics = Metrics(drift, score=score)
    engine = Engine(
        run, calibration, metrics, explain_steps=settings.explain_steps, fingerprint=calibration_fingerprint(run)
    )
    state = ServiceState(settings=settings, run=run, engine=engine, metrics=metrics, generator=open_generator(settings))
    if settings.log_inputs is not None:
        state.input_log = InputLog(
            settings.log_inputs,
            max_bytes=settings.log_max_bytes,
            backups=settings.log_backups,
            on_error=metrics.input_log_failures.inc,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caveat-model")  # the one model thread
        torch.set_num_threads(settings.inference_threads)  # process-wide: spinning threads starve the event loop
        if state.input_log is not None:
            state.input_log.start()
        hangup = _reload_on_sighup(state)
        state.batcher = MicroBatcher(
            engine.run_batch,
            executor,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.queue_limit,
            max_queue_wait_s=settings.max_queue_wait_s,
            on_failure=metrics.batch_failures.inc,
            on_shed=lambda reason: metrics.shed.labels(reason=reason).inc(),
        )
        loading = asyncio.create_task(state.load(executor))
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            loading.cancel()
            await state.batcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            if state.input_log is not None:
                await asyncio.to_thread(state.input_log.close)  # writes what is queued

    about = dict(
        title="caveat",
        version=__version__,
        lifespan=lifespan,
        description=f"Predictions with calibrated uncertainty and decisions from the run {run.path.name!r} "
        f"({run.task.value}).",
    )
    if settings.docs:
        # /docs and /redoc load Swagger UI and ReDoc from files bundled with fastapi-offline, not from a CDN, so
        # they work where the service has no internet; no validator badge, which would send the spec's URL out
        app = FastAPIOffline(static_url=DOCS_ASSETS, swagger_ui_parameters={"validatorUrl": None}, **about)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **about)
    app.state.caveat = state
    errors.install(app)
    protected = [Depends(APIKeyHeader(name="X-API-Key", auto_error=False))] if settings.api_key else []  # documents it
    app.include_router(health.health)
    app.include_router(health.metrics, dependencies=protected)
    app.include_router(predict.router, dependencies=protected)
    app.include_router(explain.router, dependencies=protected)
    app.include_router(generate.router, dependencies=protected)
    app.include_router(admin.router, dependencies=protected)
    # added innermost first: the request passes FrontDoor, Metrics, CORS, BodyLimit, ApiKey, then the routes
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_keys)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_texts * settings.max_text_chars * 4 + 65_536,
        timeout_s=settings.body_timeout_s,
    )
    if settings.cors_origins:  # outside the key check: a browser's preflight carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    paths = frozenset(route_paths(app.routes))
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths=paths)  # counts 401, 413 and 500 too
    app.add_middleware(FrontDoorMiddleware)
    return app


def route_paths(routes) -> list[str]:
    """Every route's path template, within included routers too: the metrics label a request that never reaches
    its route (a 401 from the key check, a 413) by the path it asked for. Recent FastAPI keeps an included
    router as one entry with no ``path`` (``original_router`` holds its routes); older versions copy them."""
    out = []
    for route in routes:
        if getattr(route, "path", None):
            out.append(route.path)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += route_paths(inner.routes)
    return out


def _reload_on_sighup(state: ServiceState) -> bool:
    """Reload the calibration on SIGHUP; False where the loop cannot take signals (not the main thread, as
    under a test client, or no SIGHUP on this platform)."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        return False
    loop, pending = asyncio.get_running_loop(), set()

    async def reload() -> None:
        with contextlib.suppress(errors.RequestError):  # a failed reload is logged and counted by state.reload
            await state.reload("SIGHUP")

    def on_hangup() -> None:
        task = loop.create_task(reload())
        pending.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(pending.discard)

    try:
        loop.add_signal_handler(hangup, on_hangup)
    except (RuntimeError, NotImplementedError, ValueError):
        log.debug("SIGHUP does not reload the calibration here (not the main thread); use POST /v1/admin/reload")
        return False
    return True
