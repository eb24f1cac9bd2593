"""``create_app(settings)``: the FastAPI application serving one run directory."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

import torch
from fastapi import Depends, FastAPI
from fastapi.security import APIKeyHeader

from caveat._version import __version__
from caveat.calibration import Calibration
from caveat.service import errors
from caveat.service.batcher import MicroBatcher
from caveat.service.engine import Engine, open_served_run
from caveat.service.generator import open_generator
from caveat.service.metrics import DriftMonitor, Metrics
from caveat.service.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from caveat.service.routes import explain, generate, health, predict
from caveat.service.settings import ServiceSettings
from caveat.service.state import ServiceState


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app for ``settings.run_dir``; raises ``ConfigError`` at once for a run it will not serve
    (missing, or uncalibrated without ``allow_uncalibrated``) or a generation policy it cannot use. The
    model loads in the background at start-up, then the language model of /v1/generate if any; /readyz
    says when each is ready."""
    run, calibration = open_served_run(settings.run_dir, allow_uncalibrated=settings.allow_uncalibrated)
    text = calibration if isinstance(calibration, Calibration) else None  # the drift alarm watches text scores
    drift = DriftMonitor(
        text.calibration_scores if text else None,
        window=settings.drift_window,
        min_inputs=settings.drift_min_inputs,
        alpha=settings.drift_alpha,
    )
    metrics = Metrics(drift, score=text.score if text else "none")
    engine = Engine(run, calibration, metrics, explain_steps=settings.explain_steps)
    state = ServiceState(settings=settings, run=run, engine=engine, metrics=metrics, generator=open_generator(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caveat-model")  # the one model thread
        torch.set_num_threads(settings.inference_threads)  # process-wide: spinning threads starve the event loop
        state.batcher = MicroBatcher(
            engine.run_batch,
            executor,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000,
            on_failure=metrics.batch_failures.inc,
        )
        loading = asyncio.create_task(state.load(executor))
        try:
            yield
        finally:
            loading.cancel()
            await state.batcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="caveat",
        version=__version__,
        lifespan=lifespan,
        description=f"Predictions with calibrated uncertainty and decisions from the run {run.path.name!r} "
        f"({run.task.value}).",
    )
    app.state.caveat = state
    errors.install(app)
    protected = [Depends(APIKeyHeader(name="X-API-Key", auto_error=False))] if settings.api_key else []  # documents it
    app.include_router(health.health)
    app.include_router(health.metrics, dependencies=protected)
    app.include_router(predict.router, dependencies=protected)
    app.include_router(explain.router, dependencies=protected)
    app.include_router(generate.router, dependencies=protected)
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_texts * settings.max_text_chars * 4 + 65_536)
    paths = frozenset(getattr(r, "path", "") for r in app.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths=paths)  # outermost: counts 401 and 413 too
    return app
