"""The fuzz scenario of ``benchmarks.service_fire``: request bodies for /v1/predict drawn by Hypothesis from the
service's own OpenAPI schema (valid shapes, fields of the wrong type or out of range, unknown fields, any JSON at
all), then the malformed bytes of ``benchmarks.service.malformed``. Target: no response ≥ 500.

Valid ``timeout_s`` values are drawn from 10 s up: a smaller deadline the model cannot meet is answered 504 by
design (the deadline feature), not by a fault. Lists hold at most 3 items and texts 40 characters, besides the
over-limit values of the broken branch, so the valid requests stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from benchmarks.fire.common import DROPPED, Options
from benchmarks.service import launch, malformed

MAX_ITEMS, MAX_CHARS, MIN_TIMEOUT_S = 3, 40, 10.0

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def valid(schema: dict, defs: dict, small: bool = False) -> st.SearchStrategy:
    """Values that fit ``schema`` (a JSON Schema of OpenAPI 3.1, as FastAPI writes it); ``small``: integers at
    most 10 above their minimum (values the service's own limits also accept, mostly)."""
    schema = resolve(schema, defs)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([valid(s, defs, small) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        props = {k: valid(s, defs, small) for k, s in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(valid(schema.get("items", {}), defs, small), max_size=MAX_ITEMS)
    if kind == "integer":
        low = math.ceil(schema.get("minimum", -(2**63)))
        return st.integers(low, low + 10 if small else min(int(schema.get("maximum", 2**64)), 2**64))
    if kind == "number":
        return st.floats(MIN_TIMEOUT_S, max(MIN_TIMEOUT_S, schema.get("maximum", 60.0)))
    return {
        "string": st.text(max_size=MAX_CHARS),
        "boolean": st.booleans(),
        "null": st.none(),
    }.get(kind, JUNK)


def broken(schema: dict, defs: dict) -> st.SearchStrategy:
    """Values that break ``schema``: wrong types, out of range, over the service's size limits."""
    schema = resolve(schema, defs)
    kinds = {s.get("type") for s in [schema, *schema.get("anyOf", [])]}
    out = [JUNK]
    if "integer" in kinds:
        out.append(st.integers(max_value=0) | st.integers(min_value=10**4) | st.sampled_from([2**63, 2**64, -(2**63)]))
    if "number" in kinds:
        out.append(st.floats(max_value=0.0) | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 3601.0]))
    if "array" in kinds:
        out.append(st.sampled_from([["hi"] * 129, ["x" * 10_001], [""], [" \t\n"], [["nested"]], [None]]))
    if "string" in kinds or "enum" in schema:
        out.append(st.sampled_from(["", "x" * 10_001, "MC_DROPOUT", "\x00", "\ud800"]))
    return st.one_of(out)


def bodies_strategy(schema: dict, defs: dict) -> st.SearchStrategy:
    """Whole request bodies: plausible (1 to 3 non-empty texts, small integers), valid, with fields broken, with
    unknown fields, or any JSON value."""
    schema = resolve(schema, defs)
    props = schema["properties"]
    texts = st.lists(st.text(min_size=1, max_size=MAX_CHARS), min_size=1, max_size=MAX_ITEMS)
    others = {k: valid(s, defs, small=True) for k, s in props.items() if k not in ("texts", "tokens")}
    plausible = st.fixed_dictionaries({"texts": texts}, optional=others)
    broken_fields = st.fixed_dictionaries(
        {}, optional={k: st.one_of(valid(s, defs), broken(s, defs)) for k, s in props.items()}
    )
    extra = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in props), JUNK, min_size=1, max_size=2)
    with_extra = st.tuples(valid(schema, defs), extra).map(lambda pair: {**pair[0], **pair[1]})
    return st.one_of(plausible, valid(schema, defs), broken_fields, with_extra, JUNK)


def draw(strategy: st.SearchStrategy, n: int, at: int) -> list:
    """``n`` values of ``strategy`` (Hypothesis's generation, seeded with ``at``; repeated if it drew fewer)."""
    drawn: list = []

    @seed(at)
    @settings(
        max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def collect(value) -> None:
        drawn.append(value)

    collect()
    return (drawn * (n // max(1, len(drawn)) + 1))[:n]


def encode(body) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity as bare words, lone surrogates escaped."""
    return json.dumps(body, allow_nan=True).encode()


async def send_all(base: str, bodies: list[bytes], clients: int) -> list[tuple[int | str, bytes]]:
    """Post every body to /v1/predict from ``clients`` concurrent clients; (status or error type, body) each."""
    queue, out = list(enumerate(bodies)), [None] * len(bodies)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while queue:
                i, body = queue.pop()
                try:
                    r = await http.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
                    out[i] = (r.status_code, body)
                except DROPPED as err:
                    out[i] = (type(err).__name__, body)

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


def fuzz(run_dir: Path, opts: Options) -> dict:
    """``opts.fuzz`` schema-drawn bodies and ``opts.fuzz_bytes`` malformed ones: count the statuses, keep the first
    few bodies that got a 5xx (or no answer)."""
    # load shedding (503 + Retry-After when the queue would wait over max_queue_wait_s) is not what the fuzz judges:
    # heavy valid bodies (many MC samples) would trip it on a slow machine, so the limit is lifted here
    flags = ["--no-access-log", "--log-level", "critical", "--max-queue-wait", "3600"]
    with launch(run_dir, flags) as served:
        spec = httpx.get(f"{served.base}/openapi.json", timeout=30).json()
        defs = spec["components"]["schemas"]
        request = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        schema_bodies = [encode(b) for b in draw(bodies_strategy(request, defs), opts.fuzz, opts.seed)]
        rng = random.Random(opts.seed)
        byte_bodies = [malformed(rng) for _ in range(opts.fuzz_bytes)]
        record = {}
        for name, bodies in (("schema", schema_bodies), ("bytes", byte_bodies)):
            answers = asyncio.run(send_all(served.base, bodies, opts.fuzz_clients))
            record[name] = tally(answers)
        record["still_serving"] = httpx.post(f"{served.base}/v1/predict", json={"texts": ["hello"]}).status_code == 200
    record["server_errors"] = record["schema"]["server_errors"] + record["bytes"]["server_errors"]
    record["checks"] = {"no_5xx": record["server_errors"] == 0, "still_serving": record["still_serving"]}
    return record


def tally(answers: list[tuple[int | str, bytes]]) -> dict:
    counts: dict[str, int] = {}
    for status, _ in answers:
        counts[str(status)] = counts.get(str(status), 0) + 1
    bad = [(s, b) for s, b in answers if not isinstance(s, int) or s >= 500]
    return {
        "requests": len(answers),
        "statuses": dict(sorted(counts.items())),
        "server_errors": len(bad),
        "first_failures": [{"status": s, "body": b[:300].decode("utf-8", "replace")} for s, b in bad[:5]],
    }
