"""Request IDs: the client's ``X-Request-ID`` when it is a plain token, else a new one; the ID of the request
being handled is in a context variable, so error bodies and log lines can name it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
_PLAIN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")  # nothing that could forge a log line or a header
_current: ContextVar[str | None] = ContextVar("caveat_request_id", default=None)


def choose(given: bytes | None) -> str:
    """``given`` (the header's value) when it is 1-128 characters of letters, digits and ``._:-``; otherwise a
    new random ID (32 hex digits)."""
    if given is not None:
        text = given.decode("latin-1")
        if _PLAIN.fullmatch(text):
            return text
    return uuid.uuid4().hex


def current() -> str | None:
    """The ID of the request being handled here (None outside a request)."""
    return _current.get()


def bind(request_id: str):
    """Make ``request_id`` current; returns the token to ``unbind`` with."""
    return _current.set(request_id)


def unbind(token) -> None:
    _current.reset(token)
