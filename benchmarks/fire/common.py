"""What the scenarios of ``benchmarks.service_fire`` share: their options, an asyncio load generator that records
every request (``Shot``), figures over the shots, the server's RSS and its request counters."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# a request on an established connection that ended without a complete response: lost by the server
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout)
REFUSED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # never reached the server


@dataclass
class Options:
    """Sizes of the scenarios (the command line's flags)."""

    seconds: float = 60.0  # load per phase
    clients: int = 256  # overload and sigterm
    max_queue: int = 64  # the overload server's queue limit (the service default, 8 x 32, is 256)
    baseline_clients: int = 16  # slowloris: the served clients
    slow_connections: int = 64  # slowloris: connections sending a byte a second
    fuzz: int = 10_000  # requests generated from the OpenAPI schema
    fuzz_bytes: int = 2_000  # malformed bodies of benchmarks/service.py
    fuzz_clients: int = 8
    grace_s: float = 10.0  # sigterm: --shutdown-grace
    workers_clients: int = 64
    file_texts: int = 100_000
    fault_rate: float = 0.01  # faults: the share of the model's forward passes that raise
    seed: int = 0

    @property
    def warmup(self) -> float:
        """Seconds at the start of a load phase left out of latencies and rates (all statuses still count)."""
        return min(2.0, self.seconds / 5)


@dataclass
class Shot:
    """One request: when it was sent and ended (``time.monotonic``), its status or error kind."""

    start: float
    end: float
    status: int | None = None
    error: str | None = None  # "refused", "dropped" or the exception's type name
    retry_after: bool = False
    request_id: str | None = None  # the X-Request-ID of an error's answer (500s must carry one)


@dataclass
class Load:
    """Clients posting ``payloads`` in turn until ``stop`` is set; each honours Retry-After (at most 5 s)."""

    base: str
    payloads: list[dict]
    clients: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    shots: list[Shot] = field(default_factory=list)
    timeout: float = 60.0

    async def run(self, seconds: float | None = None) -> list[Shot]:
        """All clients until ``stop`` is set, or for ``seconds``."""
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, self.stop.set)
        await asyncio.gather(*(self.client(i) for i in range(self.clients)))
        return self.shots

    async def client(self, index: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=self.base, timeout=self.timeout, limits=limits) as http:
            i = index
            while not self.stop.is_set():
                shot = await self.post(http, self.payloads[i % len(self.payloads)])
                i += self.clients
                self.shots.append(shot)
                pause = 0.2 if shot.error == "refused" else 0.0
                if shot.status == 503 and shot.retry_after:
                    pause = min(5.0, float(shot.retry_after))
                if pause:
                    await self.sleep(pause)

    async def post(self, http: httpx.AsyncClient, payload: dict) -> Shot:
        start = time.monotonic()
        try:
            r = await http.post("/v1/predict", json=payload)
        except REFUSED:
            return Shot(start, time.monotonic(), error="refused")
        except DROPPED:
            return Shot(start, time.monotonic(), error="dropped")
        except httpx.HTTPError as err:
            return Shot(start, time.monotonic(), error=type(err).__name__)
        rid = r.headers.get("X-Request-ID") if r.status_code >= 500 else None
        return Shot(start, time.monotonic(), r.status_code, retry_after=retry_after(r), request_id=rid)

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass


def retry_after(r: httpx.Response) -> float | bool:
    """The Retry-After seconds of ``r`` (False when it has none or it is not a number)."""
    try:
        return float(r.headers["Retry-After"])
    except (KeyError, ValueError):
        return False


def statuses(shots: list[Shot]) -> dict[str, int]:
    """Count of each status code, and of each error kind (``error:<kind>``)."""
    counts: dict[str, int] = {}
    for s in shots:
        key = str(s.status) if s.status is not None else f"error:{s.error}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def latency_ms(shots: list[Shot]) -> dict[str, float | None]:
    """p50 and p99 of the 200s, in milliseconds (None with fewer than 2)."""
    served = [1000 * (s.end - s.start) for s in shots if s.status == 200]
    if len(served) < 2:
        return {"p50_ms": None, "p99_ms": None}
    q = statistics.quantiles(served, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1)}


def window(shots: list[Shot], start: float, seconds: float) -> dict:
    """Figures of the shots sent in ``[start, start + seconds)``: served req/s and latency of the 200s."""
    inside = [s for s in shots if start <= s.start < start + seconds]
    served = sum(s.status == 200 for s in inside)
    return {"served": served, "served_per_s": round(served / seconds, 2), **latency_ms(inside)}


def rss_mb(pid: int, field_name: str = "VmRSS") -> float | None:
    """Resident memory of process ``pid`` from /proc (``VmRSS`` now, ``VmHWM`` its peak), in MB; None off Linux."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else None


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants (``--workers N``'s
    worker processes)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def predict_counts(base: str) -> dict[str, float]:
    """``caveat_http_requests_total`` of /v1/predict by status, from /metrics (summed over workers)."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith("caveat_http_requests_total{") and 'route="/v1/predict"' in line:
            status = re.search(r'status="(\d+)"', line).group(1)
            counts[status] = counts.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def payloads_of(texts: list[str]) -> list[dict]:
    """One text per request, as a production client sends them."""
    return [{"texts": [t]} for t in texts]
