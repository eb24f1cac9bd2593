"""Pure ASGI middleware, outermost first: the front door (request IDs, security headers, the last-resort 500),
request metrics, CORS when configured (added in app.py), a body-size limit and the optional API key. The
last two answer before the app reads the body; the limit also counts the bytes as they arrive."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Sequence

from caveat.service import requestid
from caveat.service.metrics import Metrics

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/docs-assets"  # the bundled Swagger UI and ReDoc files (fastapi-offline): open like the pages
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# the docs pages: their scripts, styles and fonts come from this service; Swagger UI's and ReDoc's own inline
# start-up script and styles need 'unsafe-inline', ReDoc's search runs in a blob: worker
HTML_POLICY = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


async def send_problem(send, status: int, detail: str, headers: tuple = ()) -> None:
    """Answer ``{"detail": ..., "request_id": ...}`` with ``status`` (the same body as every other error)."""
    body = json.dumps({"detail": detail, "request_id": requestid.current()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class FrontDoorMiddleware:
    """Outermost: give every request an ID (its ``X-Request-ID`` when plain, else a new one) that its response
    header, error body and log lines carry; add the security headers (and a CSP on HTML pages); and answer an
    exception nothing else handled with a 500 that names the request and nothing of the code (the traceback
    goes to the log)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = requestid.choose(dict(scope["headers"]).get(b"x-request-id"))
        token, started = requestid.bind(rid), False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers += [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", HTML_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as err:
            log.error("request %s: %s %s failed", rid, scope.get("method"), scope["path"], exc_info=err)
            if started:  # the status is out; all that is left is to cut the response short
                raise
            await send_problem(
                send_with_headers,
                500,
                f"internal error: the service failed on this request and keeps serving; retry, and quote "
                f"request {rid} when you report it",
            )
        finally:
            requestid.unbind(token)


class MetricsMiddleware:
    """Count requests by route template and status, and time them (unknown paths count as "other")."""

    def __init__(self, app, metrics: Metrics, paths: frozenset[str] = frozenset()):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] in self.paths else "other"
            )
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)


class BodyRefused(Exception):
    """Raised into the app by ``BodyLimitMiddleware``'s receive once the body passes the limit or its deadline."""


class BodyLimitMiddleware:
    """413 for a body larger than the request limits can justify: at once when Content-Length says so, and
    otherwise (chunked, or a length that lies) as soon as the bytes received pass the limit, whatever the
    app was about to answer. 408 for a body still incomplete ``timeout_s`` after the request began (a client
    trickling it a byte at a time holds a connection and a task; this lets both go). Slow headers never reach
    the app: uvicorn's ``limit_concurrency`` (``max_connections``) bounds how many such connections are held."""

    def __init__(self, app, max_bytes: int, timeout_s: float | None = None):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    def _detail(self, size: str) -> str:
        return (
            f"request body of {size} bytes is over this service's limit of {self.max_bytes}: send fewer or "
            "shorter texts per request"
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            return await send_problem(send, 413, self._detail(str(int(length))))
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout_s is None else loop.time() + self.timeout_s
        received, complete, started = 0, False, False
        refused: tuple[int, str, tuple] | None = None

        async def counted_receive():
            nonlocal received, complete, refused
            if complete or deadline is None:  # after the body (e.g. waiting for a disconnect): no deadline
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    detail = (
                        f"the request body did not arrive within {self.timeout_s:g} s: send it at once, "
                        "or ask the operator for a longer body_timeout_s"
                    )
                    refused = (408, detail, ((b"connection", b"close"),))
                    raise BodyRefused(detail) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    refused = (413, self._detail(f"more than {self.max_bytes}"), ())
                    raise BodyRefused(received)
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:  # the app's own answer to a body cut short (FastAPI: a 400) gives way to the 413 / 408
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await send_problem(send, refused[0], refused[1], refused[2])


def _open(path: str) -> bool:
    """Whether ``path`` is served without the key: health, the docs pages and their bundled files (a raw path
    with ``..`` in it is not trusted to stay among those files)."""
    return path in OPEN_PATHS or (path.startswith(DOCS_ASSETS + "/") and ".." not in path.split("/"))


class ApiKeyMiddleware:
    """401 without a right ``X-API-Key`` header; health, the docs pages and their assets stay open.

    ``api_key`` is one key or several (while rotating, old and new); the header is compared with each in
    constant time (``hmac.compare_digest``), all of them every time, so the timing tells nothing of which
    key came close. No key, given or expected, is ever logged or echoed."""

    def __init__(self, app, api_key: str | bytes | Sequence[str | bytes]):
        keys = [api_key] if isinstance(api_key, (str, bytes)) else list(api_key)
        if not keys:
            raise ValueError("ApiKeyMiddleware needs at least one key; leave it out for an open API")
        self.app, self.keys = app, tuple(k.encode() if isinstance(k, str) else k for k in keys)

    def _accepts(self, given: bytes) -> bool:
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(given, key)
        return matched

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _open(scope["path"]):
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-api-key")
        if given is not None and self._accepts(given):
            return await self.app(scope, receive, send)
        problem = "missing X-API-Key header" if given is None else "wrong X-API-Key"
        await send_problem(
            send,
            401,
            f"{problem}: send the key this service was started with (CAVEAT_API_KEY)",
            ((b"www-authenticate", b'ApiKey header="X-API-Key"'),),
        )
