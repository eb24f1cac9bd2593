"""/docs and /redoc work offline: every script, style sheet and icon they load is served by the service."""

from __future__ import annotations

import asyncio
import re

import pytest

from caveat.service.middleware import ApiKeyMiddleware
from tests.service.conftest import serving

ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def client(served_run):
    with serving(served_run, api_key="sesame") as c:  # the pages and their files stay open without the key
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assets = ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets), html
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert not re.search(r"cdn\.|googleapis|jsdelivr|unpkg", html), html
    for url in assets:
        got = client.get(url)
        kind = TYPES[url[url.rindex(".") :]]
        assert got.status_code == 200 and kind in got.headers["content-type"], (url, got.status_code, got.headers)
        assert len(got.content) > 1000, url
    if page == "/docs":
        assert any(a.endswith(".css") for a in assets) and "/openapi.json" in html
        assert '"validatorUrl": null' in html  # no badge that would send the spec's URL out


def test_the_documented_routes_still_need_the_key(client):
    assert client.post("/v1/predict", json={"texts": ["alpha"]}).status_code == 401
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("path", "passed"),
    [("/docs-assets/swagger-ui.css", True), ("/docs", True), ("/docs-assets/../v1/predict", False), ("/v1/x", False)],
)
def test_the_key_check_trusts_only_plain_asset_paths(path, passed):
    # a raw path as a server hands it over (HTTP clients would resolve the dots before sending)
    seen, sent = [], []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": []}
    asyncio.run(ApiKeyMiddleware(app, api_key="sesame")(scope, None, send))
    assert bool(seen) is passed
    assert passed or sent[0]["status"] == 401
