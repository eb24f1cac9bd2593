"""POST /v1/explain."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from caveat.service.routes.predict import ERRORS
from caveat.service.schemas import ExplainRequest, ExplainResponse
from caveat.service.state import ServiceState, get_state
from caveat.service.validation import check_explain

router = APIRouter(tags=["explain"])


@router.post("/v1/explain", response_model=ExplainResponse, responses=ERRORS)
async def explain(body: ExplainRequest, state: ServiceState = Depends(get_state)) -> dict:
    """Integrated-gradients word attributions (Sundararajan et al. 2017) for the predicted label or
    ``label``: per sub-token, summed per word, with the convergence delta."""
    options = check_explain(body, state.settings, task=state.run.task, labels=state.run.labels)
    (row,) = await state.submit([body.text], options)
    return row
