"""The service under load and attack: a full queue sheds with 503, a deadline ends in 504, oversized bodies are
413 however they are sent, keys are checked in constant time and never logged, every response carries a
request ID and the security headers, and a 500 tells nothing of the code."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from caveat.service.middleware import BodyLimitMiddleware
from tests.service.conftest import metric, serving


@pytest.fixture(scope="module")
def client(served_run):
    with serving(served_run, max_wait_ms=0) as c:
        yield c


def hold_the_model(c, monkeypatch):
    """Make the model wait inside a batch holding the text "hold" until ``release`` is set."""
    predictor = c.app.state.caveat.engine.predictor
    real, entered, release = predictor.predict, threading.Event(), threading.Event()

    def held(inputs, **kw):
        if "hold" in inputs:
            entered.set()
            assert release.wait(30)
        return real(inputs, **kw)

    monkeypatch.setattr(predictor, "predict", held)
    return entered, release


def test_a_full_queue_sheds_load_with_503_and_retry_after(served_run, monkeypatch):
    with serving(served_run, max_batch_size=1, max_queue=1, max_wait_ms=0) as c, ThreadPoolExecutor(2) as pool:
        entered, release = hold_the_model(c, monkeypatch)
        held = pool.submit(c.post, "/v1/predict", json={"texts": ["hold"]})
        assert entered.wait(30)
        queued = pool.submit(c.post, "/v1/predict", json={"texts": ["alpha"]})
        batcher = c.app.state.caveat.batcher
        deadline = time.monotonic() + 10
        while batcher._queue.qsize() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        shed = c.post("/v1/predict", json={"texts": ["beta"]})
        release.set()
        assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
        assert "at capacity (1 requests waiting" in shed.json()["detail"]
        assert shed.json()["request_id"] == shed.headers["X-Request-ID"]
        assert held.result().status_code == 200 and queued.result().status_code == 200  # nothing queued is lost
        assert metric(c.get("/metrics").text, "caveat_requests_shed_total", reason="queue_full") == 1


def test_a_request_past_its_deadline_is_504_and_its_work_is_dropped(client, monkeypatch):
    entered, release = hold_the_model(client, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.post, "/v1/predict", json={"texts": ["hold"], "timeout_s": 30})
        assert entered.wait(30)
        late = client.post("/v1/predict", json={"texts": ["late alpha"], "timeout_s": 0.2})
        release.set()
        assert held.result().status_code == 200
    assert late.status_code == 504 and "deadline of 0.2 s" in late.json()["detail"], late.text
    assert late.json()["request_id"] == late.headers["X-Request-ID"]
    assert client.post("/v1/predict", json={"texts": ["gamma"]}).status_code == 200
    too_long = client.post("/v1/predict", json={"texts": ["alpha"], "timeout_s": 3600})
    assert too_long.status_code == 422 and "timeout_s=3600 is more than this service's limit of 60" in too_long.text


def test_a_chunked_body_over_the_limit_is_413_without_content_length(served_run):
    with serving(served_run, max_texts=1, max_text_chars=10) as c:  # limit: 1 * 10 * 4 + 65536 bytes

        def chunks():
            yield b'{"texts": ["'
            for _ in range(10):
                yield b"a" * 10_000
            yield b'"]}'

        json_type = {"Content-Type": "application/json"}
        r = c.post("/v1/predict", content=chunks(), headers=json_type)
        assert r.status_code == 413, r.text
        assert "more than 65576 bytes is over this service's limit" in r.json()["detail"]  # counted, not declared
        small = c.post("/v1/predict", content=iter([b'{"texts": ', b'["alpha"]}']), headers=json_type)
        assert small.status_code == 200, small.text


def test_the_body_limit_counts_bytes_as_they_arrive():
    messages = [{"type": "http.request", "body": b"x" * 40, "more_body": True} for _ in range(5)]
    sent, reads = [], []

    async def app(scope, receive, send):  # reads the whole body, then would answer 200
        while True:
            message = await receive()
            reads.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/v1/predict", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(BodyLimitMiddleware(app, max_bytes=100)(scope, receive, send))
    assert reads == [40, 40]  # the third chunk passes the limit: nothing more is read
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]


def _trickled(first_bytes_then_wait: float, after: list[dict] | None = None):
    """A receive that gives one chunk of a body, then waits ``first_bytes_then_wait`` s for the rest; and what the
    app read and the middleware sent."""
    reads, sent = [], []
    pending = [{"type": "http.request", "body": b'{"texts": [', "more_body": True}]
    pending += after or [{"type": "http.request", "body": b'"alpha"]}', "more_body": False}]

    async def app(scope, receive, send):  # reads the body, then waits for a disconnect (as streaming does)
        while True:
            message = await receive()
            reads.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await receive()

    async def receive():
        if len(reads) == 1:
            await asyncio.sleep(first_bytes_then_wait)
        if pending:
            return pending.pop(0)
        await asyncio.sleep(0.3)  # long after the body: no deadline applies any more
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    return app, receive, send, reads, sent


def test_a_body_trickled_past_its_deadline_is_408_and_the_connection_closed():
    scope = {"type": "http", "path": "/v1/predict", "headers": []}
    app, receive, send, reads, sent = _trickled(1.0)
    asyncio.run(BodyLimitMiddleware(app, max_bytes=1000, timeout_s=0.2)(scope, receive, send))
    start = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in start] == [408] and len(reads) == 1  # the rest was never waited for
    assert (b"connection", b"close") in start[0]["headers"]
    assert b"did not arrive within 0.2 s" in sent[-1]["body"]
    # in time, and then a wait (for a disconnect) longer than the deadline: answered as the app said
    app, receive, send, reads, sent = _trickled(0.05)
    asyncio.run(BodyLimitMiddleware(app, max_bytes=1000, timeout_s=0.2)(scope, receive, send))
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] and len(reads) == 2


def test_every_response_carries_a_request_id_and_security_headers(client):
    given = client.post("/v1/predict", json={"texts": []}, headers={"X-Request-ID": "trace-42.a:b"})
    assert given.headers["X-Request-ID"] == "trace-42.a:b" and given.json()["request_id"] == "trace-42.a:b"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    forged = client.get("/healthz", headers={"X-Request-ID": "x\ty" + "z" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])  # not plain: replaced
    for r in (given, made, client.get("/metrics"), client.get("/nowhere")):
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer" and "Content-Security-Policy" not in r.headers
    docs = client.get("/docs")
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    assert "default-src 'self'" in docs.headers["Content-Security-Policy"]


def test_cors_is_off_unless_origins_are_configured(client, served_run):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": preflight["Origin"]}).headers
    with serving(served_run, cors_origins="https://app.example.com, https://other.example.com", api_key="k") as c:
        ok = c.options("/v1/predict", headers={**preflight, "Access-Control-Request-Headers": "x-api-key"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
        evil = c.options("/v1/predict", headers={**preflight, "Origin": "https://evil.example.com"})
        assert evil.headers.get("access-control-allow-origin") is None
        r = c.post("/v1/predict", json={"texts": ["alpha"]}, headers={"Origin": preflight["Origin"], "X-API-Key": "k"})
        assert r.status_code == 200 and "X-Request-ID" in r.headers["access-control-expose-headers"]


def test_an_unexpected_error_is_a_500_that_names_the_request_only(client, monkeypatch, caplog):
    state = client.app.state.caveat

    def broken(rows):
        raise RuntimeError("/srv/caveat/secret/module.py: planted fault")

    monkeypatch.setattr(state, "log_inputs", broken)
    with caplog.at_level(logging.ERROR, logger="caveat"):
        r = client.post("/v1/predict", json={"texts": ["alpha"]})
    assert r.status_code == 500 and r.json()["request_id"] == r.headers["X-Request-ID"]
    assert "Traceback" not in r.text and "/srv" not in r.text and "RuntimeError" not in r.text, r.text
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert any(r.headers["X-Request-ID"] in rec.getMessage() and rec.exc_info for rec in caplog.records)
    monkeypatch.undo()
    assert client.post("/v1/predict", json={"texts": ["alpha"]}).status_code == 200  # the next one is served
    assert metric(client.get("/metrics").text, "caveat_http_requests_total", route="/v1/predict", status="500") == 1


def test_docs_can_be_turned_off(served_run):
    with serving(served_run, docs=False) as c:
        assert [
            c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json", "/docs-assets/redoc.standalone.js")
        ] == [404] * 4
        assert c.post("/v1/predict", json={"texts": ["alpha"]}).status_code == 200


def test_any_of_several_keys_opens_and_no_key_is_ever_logged(served_run, caplog):
    with caplog.at_level(logging.DEBUG), serving(served_run, api_key="old-k3y-1111, new-k3y-2222") as c:
        for key in ("old-k3y-1111", "new-k3y-2222"):
            assert c.post("/v1/predict", json={"texts": ["alpha"]}, headers={"X-API-Key": key}).status_code == 200
        wrong = c.post("/v1/predict", json={"texts": ["alpha"]}, headers={"X-API-Key": "guess-k3y-3333"})
        assert wrong.status_code == 401 and "guess-k3y-3333" not in wrong.text
        assert (
            c.post("/v1/predict", json={"texts": ["alpha"]}, headers={"X-API-Key": "old-k3y-1111,"}).status_code == 401
        )
    logged = "\n".join(f"{rec.getMessage()} {rec.args} {rec.__dict__}" for rec in caplog.records)
    assert caplog.records and not re.search(r"k3y-\d{4}", logged)
