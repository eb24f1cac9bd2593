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
    """Word attributions of one input (``caveat.explain``) by integrated gradients (Sundararajan et al.
    2017), SHAP's partition explainer, LIME or occlusion. Every method explains the same scalar: the
    calibrated probability of the predicted label or of ``target``, an uncertainty score
    (``target='uncertainty'``), or on token-classification runs the calibrated confidence of ``span``
    (its own words held fixed, its context explained)."""
    options = check_explain(body, state.settings, task=state.run.task, labels=state.run.labels)
    (row,) = await state.submit([body.input], options)
    return row
