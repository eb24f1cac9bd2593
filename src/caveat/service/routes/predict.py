"""POST /v1/predict."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from caveat.service import requestid
from caveat.service.schemas import PredictRequest, PredictResponse, Problem
from caveat.service.state import ServiceState, get_state
from caveat.service.validation import check_predict

router = APIRouter(tags=["predict"])
ERRORS = {
    401: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    500: {"model": Problem},
    503: {"model": Problem},
    504: {"model": Problem},
}


@router.post("/v1/predict", response_model=PredictResponse, response_model_exclude_none=True, responses=ERRORS)
async def predict(body: PredictRequest, state: ServiceState = Depends(get_state)) -> dict:
    """Per input: label (or entity spans), top-k probabilities, uncertainty scores, conformal prediction
    set, and the decision (answer / abstain / route) with its reason. Concurrent requests share
    forward passes (micro-batching). With ``--log-inputs`` each input is appended to the input log. 503 with
    Retry-After when the queue is full; 504 past the deadline (``timeout_s``, or the service's)."""
    options = check_predict(
        body, state.settings, task=state.run.task, labels=state.run.labels, request_id=requestid.current()
    )
    rows = await state.submit(body.inputs, options, timeout=body.timeout_s)
    state.log_inputs(rows)
    return {
        "run": state.run.path.name,
        "task": state.run.task.value,
        "method": options.method,
        "seed": options.seed if options.method == "mc_dropout" else None,
        "calibrated": state.calibrated,
        "predictions": rows,
    }
