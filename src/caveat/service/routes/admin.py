"""POST /v1/admin/reload."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from caveat.service.errors import RequestError
from caveat.service.schemas import Problem, ReloadResponse
from caveat.service.state import ServiceState, get_state

router = APIRouter(tags=["admin"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 409: {"model": Problem}}


@router.post("/v1/admin/reload", response_model=ReloadResponse, responses=ERRORS)
async def reload(state: ServiceState = Depends(get_state)) -> dict:
    """Read the run's calibration again (caveat.json and calibration.safetensors, e.g. after
    ``caveat calibrate RUN``) and serve it without dropping a request: batches already running finish
    with the old one. The drift alarm compares with the new calibration's scores from then on. 409 when
    the calibration cannot be read (the old one keeps serving). Needs the API key: a service started
    without one refuses (403); SIGHUP to the process reloads too."""
    if state.settings.api_key is None:
        raise RequestError(
            "/v1/admin/reload needs an API key and this service has none: restart it with CAVEAT_API_KEY set, "
            "or send the process SIGHUP (kill -HUP PID) to reload the calibration",
            403,
        )
    return await state.reload("POST /v1/admin/reload")
