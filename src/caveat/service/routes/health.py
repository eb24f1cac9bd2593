"""GET /healthz, /readyz (always open) and /metrics (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caveat.service.schemas import Health, Readiness
from caveat.service.state import ServiceState, get_state

health = APIRouter(tags=["health"])
metrics = APIRouter(tags=["metrics"])


@health.get("/healthz", response_model=Health)
async def healthz() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@health.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: ServiceState = Depends(get_state)):
    """Readiness: 200 once the model is loaded and the worker runs, 503 before (or after a failed load).
    ``generation`` says whether /v1/generate's language model is loaded (it does not change the status);
    ``calibration`` is the live calibration's fingerprint."""
    body = {
        "ready": state.ready,
        "run": str(state.run.path),
        "task": state.run.task.value,
        "calibrated": state.calibrated,
        "detail": state.status(),
        "generation": state.generator.status() if state.generator is not None else None,
        "calibration": state.engine.fingerprint,
    }
    return body if state.ready else JSONResponse(body, status_code=503)


@metrics.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def prometheus(state: ServiceState = Depends(get_state)) -> Response:
    """Request counts and latency by route, decisions by action, batch sizes, and the drift test."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
