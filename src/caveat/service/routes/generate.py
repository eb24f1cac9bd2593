"""POST /v1/generate."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from caveat.service.routes.predict import ERRORS
from caveat.service.schemas import GenerateRequest, GenerateResponse, Problem
from caveat.service.state import ServiceState, get_state
from caveat.service.validation import check_generate

router = APIRouter(tags=["generate"])


@router.post("/v1/generate", response_model=GenerateResponse, responses={**ERRORS, 404: {"model": Problem}})
async def generate(body: GenerateRequest, state: ServiceState = Depends(get_state)) -> dict:
    """A causal LM's answer to one question (``caveat generate``): the greedy answer and K samples from
    one generate call, each estimator's uncertainty (higher = more uncertain) and, when the service
    runs a generation policy from ``caveat generate-calibrate``, answer or abstain under its risk
    bound. 404 when the service was started without ``--lm`` or ``--generation-policy``; 504 past the
    deadline (``timeout_s``, or the service's)."""
    options = check_generate(body, state.settings, policy=state.need_generator().policy)
    return await state.generate(body.question, body.context, options, timeout=body.timeout_s)
