"""Pure ASGI middleware: request metrics (outermost), a body-size limit and the optional API key.
The last two answer before the body is read."""

from __future__ import annotations

import json
import secrets
import time

from caveat.service.metrics import Metrics

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/docs-assets"  # the bundled Swagger UI and ReDoc files (fastapi-offline): open like the pages


async def send_problem(send, status: int, detail: str, headers: tuple = ()) -> None:
    """Answer ``{"detail": ...}`` with ``status`` (the same body as every other 4xx)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


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


class BodyLimitMiddleware:
    """413 for a declared body larger than the request limits can justify."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                return await send_problem(
                    send,
                    413,
                    f"request body of {int(length)} bytes is over this service's limit of "
                    f"{self.max_bytes}: send fewer or shorter texts per request",
                )
        await self.app(scope, receive, send)


def _open(path: str) -> bool:
    """Whether ``path`` is served without the key: health, the docs pages and their bundled files (a raw path
    with ``..`` in it is not trusted to stay among those files)."""
    return path in OPEN_PATHS or (path.startswith(DOCS_ASSETS + "/") and ".." not in path.split("/"))


class ApiKeyMiddleware:
    """401 without the right ``X-API-Key`` header; health, the docs pages and their assets stay open."""

    def __init__(self, app, api_key: str):
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _open(scope["path"]):
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-api-key")
        if given is not None and secrets.compare_digest(given, self.key):
            return await self.app(scope, receive, send)
        problem = "missing X-API-Key header" if given is None else "wrong X-API-Key"
        await send_problem(
            send,
            401,
            f"{problem}: send the key this service was started with (CAVEAT_API_KEY)",
            ((b"www-authenticate", b'ApiKey header="X-API-Key"'),),
        )
