"""The load scenarios of ``benchmarks.service_fire``: overload, slowloris, sigterm, faults, workers. Each starts
its own ``caveat serve`` subprocess and returns its figures with a ``checks`` dict (True: target met)."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks.fire.common import (
    Load,
    Options,
    Shot,
    cpu_seconds,
    payloads_of,
    predict_counts,
    rss_mb,
    statuses,
    window,
)
from benchmarks.service import Served, launch, texts_of

QUIET = ["--no-access-log", "--log-level", "warning"]


def overload(run_dir: Path, opts: Options) -> dict:
    """``clients`` clients against a queue of ``max_queue``: only 200 and 503 (with Retry-After), p99 of the 200s
    ≤ 2 s, RSS growth ≤ 200 MB."""
    with launch(run_dir, [*QUIET, "--max-queue", str(opts.max_queue)]) as served:
        record = asyncio.run(_overload(served, payloads_of(texts_of(run_dir)), opts))
    shed = record["statuses"].get("503", 0)
    record["checks"] = {
        "only_200_and_503": set(record["statuses"]) <= {"200", "503"},
        "every_503_has_retry_after": record["503_without_retry_after"] == 0,
        "p99_le_2s": record["p99_ms"] is not None and record["p99_ms"] <= 2000,
        "rss_growth_le_200mb": record["rss_growth_mb"] is not None and record["rss_growth_mb"] <= 200,
        "load_was_shed": shed > 0,  # otherwise the queue limit was never reached: the run proves little
    }
    return record


async def _overload(served: Served, payloads: list[dict], opts: Options) -> dict:
    pid, load = served.proc.pid, Load(served.base, payloads, opts.clients)
    rss = [rss_mb(pid)]

    async def watch() -> None:
        while not load.stop.is_set():
            await load.sleep(0.5)
            rss.append(rss_mb(pid))

    t0 = time.monotonic()
    shots, _ = await asyncio.gather(load.run(opts.seconds), watch())
    rss.append(rss_mb(pid))
    known = [r for r in rss if r is not None]
    return {
        "clients": opts.clients,
        "seconds": opts.seconds,
        "max_queue": opts.max_queue,
        "requests": len(shots),
        "statuses": statuses(shots),
        "503_without_retry_after": sum(s.status == 503 and not s.retry_after for s in shots),
        **window(shots, t0 + opts.warmup, opts.seconds - opts.warmup),
        "rss_start_mb": round(known[0], 1) if known else None,
        "rss_end_mb": round(known[-1], 1) if known else None,
        "rss_peak_mb": round(max(known), 1) if known else None,
        "rss_growth_mb": round(max(known) - known[0], 1) if known else None,
    }


def slowloris(run_dir: Path, opts: Options) -> dict:
    """``baseline_clients`` clients for ``seconds`` alone, then beside ``slow_connections`` connections that send a
    byte a second (half still in their headers, half in their body): served p99 within 20%."""
    with launch(run_dir, QUIET) as served:
        record = asyncio.run(_slowloris(served, payloads_of(texts_of(run_dir)), opts))
    without, with_slow = record["without"]["p99_ms"], record["with_slow"]["p99_ms"]
    record["p99_ratio"] = round(with_slow / without, 3) if without and with_slow else None
    record["checks"] = {
        "p99_within_20pct": record["p99_ratio"] is not None and record["p99_ratio"] <= 1.2,
        "served_beside_slow": record["with_slow"]["served"] > 0,
    }
    return record


async def _slowloris(served: Served, payloads: list[dict], opts: Options) -> dict:
    await Load(served.base, payloads, opts.baseline_clients).run(opts.warmup)  # warm-up, not counted
    phases = {}
    for name in ("without", "with_slow"):
        stop, slow = asyncio.Event(), []
        if name == "with_slow":
            slow = [asyncio.create_task(trickle(served.base, i, stop)) for i in range(opts.slow_connections)]
            await asyncio.sleep(1.0)  # every slow connection is open and has sent its first bytes
        t0 = time.monotonic()
        shots = await Load(served.base, payloads, opts.baseline_clients).run(opts.seconds)
        stop.set()
        ends = await asyncio.gather(*slow)
        phases[name] = {**window(shots, t0, opts.seconds), "statuses": statuses(shots)}
        if name == "with_slow":
            phases[name]["slow_connections"] = {e: ends.count(e) for e in sorted(set(ends))}
    return {"baseline_clients": opts.baseline_clients, "slow_connections": opts.slow_connections, **phases}


async def trickle(base: str, index: int, stop: asyncio.Event) -> str:
    """One slow connection until ``stop``: a request whose headers (odd ``index``) or body (even) come a byte a
    second. Returns how it ended: "open" (still trickling), "closed" (by the server) or "answered"."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
    body_first = index % 2 == 0
    writer.write((head + "Content-Length: 100000\r\n\r\n" if body_first else head + "X-Slow: ").encode())
    answer, stopped = asyncio.ensure_future(reader.read(1024)), asyncio.ensure_future(stop.wait())
    end = "open"
    try:
        while not stop.is_set():
            await writer.drain()
            await asyncio.wait([answer, stopped], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            if answer.done():
                end = "answered" if answer.result() else "closed"
                break
            writer.write(b"x" if body_first else b"s")
    except (ConnectionError, OSError):
        end = "closed"
    finally:
        answer.cancel()
        stopped.cancel()
        writer.close()
    return end


def sigterm(run_dir: Path, opts: Options) -> dict:
    """SIGTERM to the server under ``clients`` clients: no request in flight at the signal is dropped, exit 0
    within ``--shutdown-grace``."""
    with launch(run_dir, [*QUIET, "--shutdown-grace", str(opts.grace_s)]) as served:
        record = asyncio.run(_sigterm(served, payloads_of(texts_of(run_dir)), opts))
    record["checks"] = {
        "no_in_flight_dropped": record["in_flight"] > 0 and record["in_flight_unanswered"] == 0,
        "exit_code_0": record["exit_code"] == 0,
        "exit_within_grace": record["exit_s"] is not None and record["exit_s"] <= opts.grace_s,
    }
    return record


async def _sigterm(served: Served, payloads: list[dict], opts: Options) -> dict:
    load = Load(served.base, payloads, opts.clients)
    running = asyncio.ensure_future(load.run())
    await asyncio.sleep(max(1.0, opts.seconds / 2))  # the queue fills: full load
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    while served.proc.poll() is None and time.monotonic() < signalled + opts.grace_s + 30:
        await asyncio.sleep(0.02)
    exited = time.monotonic() if served.proc.poll() is not None else None
    await asyncio.sleep(0.5)
    load.stop.set()
    shots = await running
    in_flight = [s for s in shots if s.start < signalled < s.end]
    after = [s for s in shots if s.start >= signalled]
    return {
        "clients": opts.clients,
        "grace_s": opts.grace_s,
        "requests_before_signal": sum(s.end <= signalled for s in shots),
        "in_flight": len(in_flight),
        "in_flight_statuses": statuses(in_flight),
        "in_flight_unanswered": sum(s.status is None for s in in_flight),
        "after_signal_statuses": statuses(after),  # refused: expected; dropped: sent on a connection being closed
        "exit_code": served.proc.returncode,
        "exit_s": round(exited - signalled, 3) if exited else None,
        "server_log_tail": served.log_text()[-1500:],
    }


# ``caveat serve`` whose model fails on a seeded share of its forward passes (argv[1]), each failure counted in a
# file (argv[2]); the rest of argv is the CLI's. Only this benchmark patches the service: it has no fault switch.
FAULTY = """
import random, sys
from caveat.cli.app import main
from caveat.inference import Predictor

rate, count, draw = float(sys.argv[1]), sys.argv[2], random.Random(0)
real = Predictor._predict

def faulty(self, inputs, **kw):
    if draw.random() < rate:
        with open(count, "a") as f:
            f.write(f"{len(inputs)}\\n")
        raise RuntimeError("injected fault")
    return real(self, inputs, **kw)

Predictor._predict = faulty
sys.argv = ["caveat", *sys.argv[3:]]
main()
"""


def faults(run_dir: Path, opts: Options) -> dict:
    """``fault_rate`` (1%) of the model's forward passes raise under ``workers_clients`` clients: only requests of a
    failed pass may fail, each with a 500 that carries a request ID (a batch that fails is retried request by
    request, so mostly none do), and the worker keeps serving."""
    with tempfile.TemporaryDirectory(prefix="caveat-faults-") as folder:
        driver, count = Path(folder) / "faulty_serve.py", Path(folder) / "faults.txt"
        driver.write_text(FAULTY)
        entry = [str(driver), str(opts.fault_rate), str(count)]
        with launch(run_dir, QUIET, entry=entry) as served:
            record = asyncio.run(_faults(served, payloads_of(texts_of(run_dir)), opts))
        injected = count.read_text().split() if count.is_file() else []
    record.update(
        fault_rate=opts.fault_rate, injected_faults=len(injected), inputs_in_failed_passes=sum(map(int, injected))
    )
    record["checks"] = {
        "faults_were_injected": len(injected) > 0,  # else the run proves nothing
        "only_200_and_500": set(record["statuses"]) <= {"200", "500"},
        "failed_le_inputs_in_failed_passes": record["statuses"].get("500", 0) <= record["inputs_in_failed_passes"],
        "every_500_names_a_request_id": record["500_without_request_id"] == 0,
        "serves_after": record["after"] == 200,
    }
    return record


async def _faults(served: Served, payloads: list[dict], opts: Options) -> dict:
    load = Load(served.base, payloads, opts.workers_clients)
    shots = await load.run(opts.seconds)
    # Still serving: one request at a time after the load. A lone request's pass can draw a fault too (at the test's
    # 30% rate, often), so up to 20 are sent and the first answer other than 500 is kept.
    async with httpx.AsyncClient(base_url=served.base, timeout=60) as http:
        for tries in range(1, 21):
            after = await http.post("/v1/predict", json=payloads[tries % len(payloads)])
            if after.status_code != 500:
                break
    return {
        "clients": opts.workers_clients,
        "seconds": opts.seconds,
        "requests": len(shots),
        "statuses": statuses(shots),
        "500_without_request_id": sum(s.status == 500 and not s.request_id for s in shots),
        "after": after.status_code,
        "after_tries": tries,
    }


def workers(run_dir: Path, opts: Options) -> dict:
    """Served req/s of ``--workers 2`` over ``--workers 1`` under ``workers_clients`` clients (≥ 1.6×), and
    /metrics request counts equal to what the clients saw answered."""
    record: dict = {"clients": opts.workers_clients, "seconds": opts.seconds}
    for n in (1, 2):
        with launch(run_dir, [*QUIET, "--workers", str(n)]) as served:
            record[f"workers_{n}"] = asyncio.run(_counted(served, payloads_of(texts_of(run_dir)), opts))
    one, two = record["workers_1"]["served_per_s"], record["workers_2"]["served_per_s"]
    record["throughput_ratio"] = round(two / one, 3) if one else None
    record["checks"] = {
        "ratio_ge_1_6": record["throughput_ratio"] is not None and record["throughput_ratio"] >= 1.6,
        "metrics_match_clients": all(record[f"workers_{n}"]["metrics_match"] for n in (1, 2)),
    }
    return record


async def _counted(served: Served, payloads: list[dict], opts: Options) -> dict:
    """The served figures, the counts /metrics gives, and the cores the clients (this process) and the service
    (all its processes) kept busy: on a small machine the clients' share is what the workers cannot have."""
    t0, client0, server0 = time.monotonic(), time.process_time(), cpu_seconds(served.proc.pid)
    shots: list[Shot] = await Load(served.base, payloads, opts.workers_clients).run(opts.seconds + opts.warmup)
    wall = time.monotonic() - t0
    cores = {
        "clients": round((time.process_time() - client0) / wall, 2),
        "service": round((cpu_seconds(served.proc.pid) - server0) / wall, 2),
    }
    await asyncio.sleep(0.5)  # the last responses' counters are written after the bytes went out
    seen = {k: v for k, v in statuses(shots).items() if not k.startswith("error")}
    counted = {k: int(v) for k, v in predict_counts(served.base).items()}
    return {
        **window(shots, t0 + opts.warmup, opts.seconds),
        "client_statuses": statuses(shots),
        "metrics_statuses": counted,
        "metrics_match": seen == counted,
        "cores_busy": cores,
    }
