"""Errors the service answers with, and the handlers that turn them into bodies that say what to change and
name the request (``request_id``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from caveat.errors import CaveatError
from caveat.service import requestid


class RequestError(CaveatError):
    """A request the service will not run; ``status`` 4xx, the message names the value and the fix."""

    def __init__(self, message: str, status: int = 422, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


class InferenceFailed(CaveatError):
    """Inference raised on one request's inputs; other requests and the worker are unaffected. Answered 500:
    the fault is the service's, and the body names only the exception's type (no message, trace or path: those
    are logged under the request ID)."""


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc[1:]] if loc[:1] == ("body",) else [str(p) for p in loc]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


EXAMPLE = 'a JSON object such as {"texts": ["where is my parcel"]} with Content-Type: application/json'


def _one(e: dict) -> str:
    where = _where(tuple(e.get("loc", ())))
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    if e.get("type") == "json_invalid":
        error = (e.get("ctx") or {}).get("error", "")
        pos = e.get("loc", ("body", "?"))[-1]
        return f"the body is not valid JSON ({error or msg} at character {pos}): send {EXAMPLE}"
    if where == "body":
        return f"{msg}" if e.get("type") == "value_error" else f"body: {msg}: send {EXAMPLE}"
    got = e.get("input")
    shown = "" if e.get("type") == "missing" or isinstance(got, (dict, list)) else f" (got {got!r:.80})"
    return (msg if msg.startswith(where) else f"{where}: {msg}") + shown


def describe(errors: list[dict]) -> str:
    """One clause per validation error: ``where: what (got value)``, and what to send instead."""
    more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(_one(e) for e in errors[:5]) + more


def _jsonable(errors: list[dict]) -> list[dict]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]


def problem(detail: str, **extra) -> dict:
    """An error body: ``detail``, any ``extra`` fields, and the current request's ID."""
    return {"detail": detail, **extra, "request_id": requestid.current()}


def install(app: FastAPI) -> None:
    """Register the handlers: validation -> 422, RequestError -> its status, InferenceFailed -> 500, and
    FastAPI's bare 400 for an unparsable body -> the same 400 saying what to send."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = f"the body could not be parsed (JSON nested too deeply, or a number too long?): send {EXAMPLE}"
        return JSONResponse(problem(detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(problem(describe(errors), errors=_jsonable(errors)), status_code=422)

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(problem(str(exc)), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InferenceFailed)
    async def _failed(request: Request, exc: InferenceFailed) -> JSONResponse:
        return JSONResponse(problem(str(exc)), status_code=500)
