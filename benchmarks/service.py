"""Load test of ``caveat serve`` (bounded; not part of the unit tests).

    python -m benchmarks.service RUN_DIR --seconds 30

For ``--seconds`` each, against a real uvicorn server in a subprocess:

1. ``microbatched``: ``--concurrency`` (32) async httpx clients, one text per request, the server
   grouping concurrent requests (``--max-batch-size 32``);
2. ``http_batch``: one client sending ``--batch`` (32) texts per request to the same server;
3. ``one_at_a_time``: as 1., against a server with ``--max-batch-size 1`` (no micro-batching);
4. ``python_api``: no HTTP: ``Predictor`` + ``Calibration`` (what ``caveat predict`` runs) on the same
   batches of ``--batch`` texts, in this process;
5. ``fuzz``: ``--fuzz`` (2000) malformed request bodies (seeded: random bytes, wrong JSON types,
   truncated JSON, bad field values, deep nesting, oversized texts) to ``/v1/predict``: zero 5xx.

Prints JSON: errors (must be zero), p50/p99 latency, throughput, and the ratios
``microbatching_speedup`` (1 / 3, requests per second) and ``http_vs_python_api`` (2 / 4, predictions
per second). Clients and server share this machine's CPUs, so the ratios are what one box gives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

FALLBACK_TEXTS = [
    "where is my parcel",
    "I want to cancel my card",
    "what time does the store open today",
    "please help me reset my password",
    "how much money is in my account",
    "the order never arrived",
    "can I change the delivery address",
    "my phone was stolen, block everything",
]


def texts_of(run_dir: Path, n: int = 256) -> list[str]:
    """Texts from the run's own data (calibration, then test, then train); a fixed list when unreadable."""
    try:
        from caveat.data.load import load_data
        from caveat.models.rundir import open_run

        splits = load_data(open_run(run_dir).config)
        texts = [
            ex.text
            for split in (splits.calibration, splits.test, splits.train)
            if split is not None
            for ex in split.examples
        ]
    except Exception:  # the data files may be elsewhere at benchmark time: any texts will do
        texts = []
    return (texts or FALLBACK_TEXTS)[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A ``caveat serve`` subprocess: its base URL, process and log (stdout and stderr together)."""

    base: str
    proc: subprocess.Popen
    log: IO[str]

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read()


@contextlib.contextmanager
def launch(
    run_dir: Path, flags: Sequence[str] = (), *, ready_timeout: float = 300.0, entry: Sequence[str] = ("-m", "caveat")
):
    """``caveat serve RUN_DIR --port P FLAGS`` in a subprocess; yields a ``Served`` once /readyz is 200;
    SIGTERM at exit (nothing, when the process has already exited). ``entry``: how Python starts the CLI (a
    script that patches the service first, then runs it, for the fault scenario of ``benchmarks.service_fire``)."""
    port = free_port()
    cmd = [sys.executable, *entry, "serve", str(run_dir), "--port", str(port), *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CAVEAT_API_KEY", None)
    log = tempfile.TemporaryFile(mode="w+")
    served = Served(
        f"http://127.0.0.1:{port}", subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log
    )
    proc = served.proc
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"caveat serve did not become ready (exit {proc.returncode}):\n{served.log_text()}")
            try:
                if httpx.get(f"{served.base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def server(run_dir: Path, *, max_batch_size: int, args: argparse.Namespace):
    """``caveat serve`` in a subprocess; yields its base URL once /readyz is 200; SIGTERM at exit."""
    flags = ["--no-access-log", "--log-level", "warning", "--max-batch-size", str(max_batch_size)]
    flags += ["--max-wait-ms", str(args.max_wait_ms), "--max-texts", str(max(128, args.batch))]
    flags += ["--torch-threads", str(args.torch_threads)]
    # room for every client: this test measures throughput, not shedding (the default queue, 8 x max batch size,
    # is 8 requests for one_at_a_time, fewer than its --concurrency clients)
    flags += ["--max-queue", str(max(args.concurrency, 8 * max_batch_size))]
    if args.allow_uncalibrated:
        flags.append("--allow-uncalibrated")
    with launch(run_dir, flags) as served:
        yield served.base


async def load(base: str, payloads: list[dict], *, clients: int, seconds: float, warmup: float = 1.0) -> dict:
    """``clients`` concurrent async clients posting ``payloads`` in turn for ``seconds`` (after a warm-up)."""
    latencies: list[float] = []
    errors: list[str] = []
    inputs = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    stop = start + seconds

    async def client(index: int) -> None:
        nonlocal inputs
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            i = index
            while (now := loop.time()) < stop:
                payload = payloads[i % len(payloads)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/predict", json=payload)
                    ok = r.status_code == 200 and len(r.json()["predictions"]) == len(payload["texts"])
                    if not ok:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                    continue
                if now >= start:  # requests sent during the warm-up are not counted
                    latencies.append(time.perf_counter() - t0)
                    inputs += len(payload["texts"]) if ok else 0

    await asyncio.gather(*(client(i) for i in range(clients)))
    return summary(latencies, inputs, seconds, errors)


def summary(latencies: list[float], inputs: int, seconds: float, errors: list[str]) -> dict:
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "requests_per_s": len(latencies) / seconds,
        "predictions_per_s": inputs / seconds,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
    }


def batch_stats(base: str) -> dict:
    """Mean inputs per forward pass, from the server's own /metrics."""
    text = httpx.get(f"{base}/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("caveat_batch_inputs_sum", "caveat_batch_inputs_count"))
    }
    count = values.get("caveat_batch_inputs_count", 0.0)
    return {
        "forward_passes": int(count),
        "mean_inputs_per_pass": values.get("caveat_batch_inputs_sum", 0.0) / count if count else None,
    }


def python_api(run_dir: Path, batches: list[list[str]], seconds: float, torch_threads: int) -> dict:
    """The same work without HTTP: the rows of caveat.rows.predict_rows (what caveat predict and Model.predict
    run), batch after batch."""
    import torch

    from caveat.inference import Predictor
    from caveat.rows import predict_rows

    torch.set_num_threads(torch_threads)
    predictor = Predictor.from_run(run_dir)  # carries the run's calibration
    for batch in batches[:3]:  # warm-up
        predict_rows(predictor, batch, top_k=5)
    latencies, inputs, i = [], 0, 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        predict_rows(predictor, batch, top_k=5)
        latencies.append(time.perf_counter() - t0)
        inputs += len(batch)
        i += 1
    return summary(latencies, inputs, seconds, [])


def malformed(rng: random.Random) -> bytes:
    """One malformed (or borderline) request body."""

    def value(depth: int = 0):
        makers = [
            lambda: None,
            lambda: rng.random() < 0.5,
            lambda: rng.randint(-(10**6), 10**6),
            lambda: rng.uniform(-1e9, 1e9),
            lambda: "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(12))),
            lambda: "texts",
            lambda: [value(depth + 1) for _ in range(rng.randrange(4))],
            lambda: {str(rng.randrange(99)): value(depth + 1) for _ in range(rng.randrange(3))},
        ]
        return makers[rng.randrange(len(makers) if depth < 3 else 6)]()

    fields = {
        "texts": lambda: rng.choice(
            [
                value(),
                [value() for _ in range(rng.randrange(5))],
                ["ok", ""],
                [" "],
                ["x" * rng.choice([10, 10**4, 10**5])],
                ["hi"] * rng.choice([1, 100, 10**4]),
                [],
            ]
        ),
        "tokens": lambda: rng.choice([value(), [["a", "b"]], [[]], [[value()]]]),
        "method": lambda: rng.choice(["deterministic", "mc_dropout", "MC", "", value()]),
        "samples": lambda: rng.choice([rng.randint(-5, 500), value()]),
        "k": lambda: rng.choice([rng.randint(-5, 10**6), value()]),
        "explain": lambda: rng.choice([True, False, value()]),
        "bogus": value,
    }
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if kind == 1:
        return json.dumps(value()).encode()
    if kind == 2:
        return ("[" * rng.choice([50, 5000]) + "]" * rng.choice([0, 50])).encode()
    body = json.dumps({k: make() for k, make in fields.items() if rng.random() < 0.5}).encode()
    return body[: rng.randrange(len(body))] if kind == 3 else body


def fuzz(base: str, n: int, seed: int = 0) -> dict:
    """Send ``n`` malformed bodies; count status codes (any 5xx is a failure)."""
    import httpx

    rng, statuses = random.Random(seed), {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(n):
            code = client.post(
                "/v1/predict", content=malformed(rng), headers={"content-type": "application/json"}
            ).status_code
            statuses[code] = statuses.get(code, 0) + 1
    return {
        "requests": n,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="A (calibrated) run directory.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each of the four phases.")
    parser.add_argument("--concurrency", type=int, default=32, help="Concurrent clients in the one-text phases.")
    parser.add_argument(
        "--batch", type=int, default=32, help="Texts per request (http_batch) and per call (python_api)."
    )
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="Server's micro-batching wait.")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="CPU threads for inference, server and python_api alike (default: the service's, all CPUs but one).",
    )
    parser.add_argument("--allow-uncalibrated", action="store_true", help="Serve a run that was not calibrated.")
    parser.add_argument("--fuzz", type=int, default=2000, help="Malformed requests in the fuzz phase (0: skip).")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.batch < 1:
        parser.error("--seconds must be > 0, --concurrency and --batch >= 1")

    texts = texts_of(args.run_dir)
    singles = [{"texts": [t]} for t in texts]
    batches = [[texts[(i + j) % len(texts)] for j in range(args.batch)] for i in range(0, len(texts), args.batch)] or [
        texts
    ]
    result: dict = {
        "run": str(args.run_dir),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "max_wait_ms": args.max_wait_ms,
        "cpus": os.cpu_count(),
        "torch_threads": args.torch_threads,
    }
    with server(args.run_dir, max_batch_size=args.batch, args=args) as base:
        result["microbatched"] = asyncio.run(load(base, singles, clients=args.concurrency, seconds=args.seconds))
        result["microbatched"].update(batch_stats(base))
        result["http_batch"] = asyncio.run(load(base, [{"texts": b} for b in batches], clients=1, seconds=args.seconds))
        if args.fuzz:
            result["fuzz"] = fuzz(base, args.fuzz)
    with server(args.run_dir, max_batch_size=1, args=args) as base:
        result["one_at_a_time"] = asyncio.run(load(base, singles, clients=args.concurrency, seconds=args.seconds))
        result["one_at_a_time"].update(batch_stats(base))
    result["python_api"] = python_api(args.run_dir, batches, args.seconds, args.torch_threads)

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    result["microbatching_speedup"] = ratio(
        result["microbatched"]["requests_per_s"], result["one_at_a_time"]["requests_per_s"]
    )
    result["http_vs_python_api"] = ratio(
        result["http_batch"]["predictions_per_s"], result["python_api"]["predictions_per_s"]
    )
    result["zero_errors"] = all(result[k]["errors"] == 0 for k in ("microbatched", "http_batch", "one_at_a_time"))
    result["fuzz_zero_5xx"] = result["fuzz"]["server_errors"] == 0 if "fuzz" in result else None
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if not result["zero_errors"] or result["fuzz_zero_5xx"] is False:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
