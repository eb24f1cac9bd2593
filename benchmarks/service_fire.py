"""The service under fire: ``caveat serve`` overloaded, trickled, fuzzed, stopped and scaled (issue 22).

    python -m benchmarks.service_fire [RUN_DIR] [--seconds 60] [--clients 256] [--only overload,fuzz,...]

Loopback only and bounded in time. Each scenario starts its own ``caveat serve RUN_DIR`` subprocess (default run:
the calibrated MiniLM CLINC150 run, benchmarks/work/clinc150) and drives it with asyncio httpx clients in this
process, so clients and server share the machine's CPUs:

1. ``overload``: ``--clients`` (256) clients for ``--seconds`` against ``--max-queue`` (64): only 200 and 503, every
   503 with Retry-After (which the clients honour), p99 of the 200s ≤ 2 s, server RSS growth ≤ 200 MB;
2. ``slowloris``: ``--baseline-clients`` (16) clients alone, then beside 64 connections sending a byte a second
   (half in their headers, half in their body): served p99 within 20%;
3. ``fuzz``: ``--fuzz`` (10,000) bodies drawn by Hypothesis from /openapi.json's schema of /v1/predict, then
   ``--fuzz-bytes`` (2,000) malformed bodies (benchmarks/service.py): no response ≥ 500;
4. ``sigterm``: SIGTERM halfway through ``--clients`` clients' load: no request in flight at the signal left
   without an answer, exit status 0, exit within ``--grace`` (the server's --shutdown-grace);
5. ``faults``: ``--fault-rate`` (1%) of the model's forward passes raise (a driver script patches the server
   process; the service itself has no fault switch): only 200 and 500, every 500 with a request ID, no more 500s
   than inputs in failed passes, and the server answers afterwards;
6. ``workers``: served req/s of ``--workers 2`` over ``--workers 1`` under ``--workers-clients`` (64) clients
   (≥ 1.6×), and /metrics request counts (summed over the workers) equal to the answers the clients got;
7. ``batch_file``: ``caveat predict RUN --file F --out preds.parquet`` on ``--file-texts`` (100,000) texts and a
   tenth of them: peak RSS ≤ 1.5 GB and not growing with the file, throughput ≥ 0.9× the in-memory path.

Prints one JSON record: per scenario its figures and ``checks`` (True: target met), and ``all_checks_pass``;
``--out FILE`` writes it there too. ``python -m benchmarks.run --only service_fire`` writes
benchmarks/results/service_fire.json. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.fire.batchfile import batch_file
from benchmarks.fire.common import Options
from benchmarks.fire.fuzzing import fuzz
from benchmarks.fire.scenarios import faults, overload, sigterm, slowloris, workers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "benchmarks" / "work" / "clinc150"
SCENARIOS: dict[str, Callable[[Path, Options], dict]] = {
    "overload": overload,
    "slowloris": slowloris,
    "fuzz": fuzz,
    "sigterm": sigterm,
    "faults": faults,
    "workers": workers,
    "batch_file": batch_file,
}
QUICK = Options(
    seconds=4, clients=64, baseline_clients=8, fuzz=300, fuzz_bytes=100, workers_clients=32, file_texts=2_000
)


def bench_service_fire(run_dir: Path, opts: Options, only: Sequence[str] = tuple(SCENARIOS)) -> dict:
    """Run the scenarios ``only`` on ``run_dir``; the record of them all."""
    record: dict = {"run": str(run_dir), "cpus": os.cpu_count(), "options": vars(opts).copy()}
    for name in only:
        start = time.perf_counter()
        record[name] = SCENARIOS[name](run_dir, opts)
        record[name]["wall_seconds"] = round(time.perf_counter() - start, 1)
    checks = [ok for name in only for ok in record[name].get("checks", {}).values()]
    record["all_checks_pass"] = all(checks)
    record["skipped"] = [name for name in only if "skipped" in record[name]]
    return record


def rows(record: dict) -> list[str]:
    """Rows of the benchmark table (benchmarks/run.py): one per scenario that ran."""

    def met(name: str) -> str:
        return "yes" if all(record[name]["checks"].values()) else "no"

    out, r = [], record
    if "overload" in r:
        o = r["overload"]
        out.append(
            f"| service under fire: {o['clients']} clients × {o['seconds']:g} s, queue {o['max_queue']} | statuses; "
            f"p99 of 200s; RSS growth | {o['statuses']}; {o['p99_ms']} ms; {o['rss_growth_mb']} MB | 200/503 only; "
            f"≤ 2000 ms; ≤ 200 MB | {met('overload')} | |"
        )
    if "slowloris" in r:
        s = r["slowloris"]
        out.append(
            f"| {s['slow_connections']} slowloris connections beside {s['baseline_clients']} clients | p99 with / "
            f"without | {s['p99_ratio']} | ≤ 1.2 | {met('slowloris')} | |"
        )
    if "fuzz" in r:
        f = r["fuzz"]
        n = f["schema"]["requests"] + f["bytes"]["requests"]
        out.append(
            f"| fuzzing /v1/predict from the OpenAPI schema | 5xx of {n} | {f['server_errors']} | 0 | {met('fuzz')} | |"
        )
    if "sigterm" in r:
        t = r["sigterm"]
        out.append(
            f"| SIGTERM under {t['clients']} clients | in flight dropped; exit code; exit s | "
            f"{t['in_flight_unanswered']} of {t['in_flight']}; {t['exit_code']}; {t['exit_s']} | 0; 0; "
            f"≤ {t['grace_s']:g} | {met('sigterm')} | |"
        )
    if "faults" in r:
        f = r["faults"]
        out.append(
            f"| {f['fault_rate']:.0%} of forward passes failing, {f['clients']} clients | statuses; faults injected | "
            f"{f['statuses']}; {f['injected_faults']} | 200/500 only, 500s with request ID, still serving | "
            f"{met('faults')} | |"
        )
    if "workers" in r:
        w = r["workers"]
        out.append(
            f"| --workers 2 / 1, {w['clients']} clients, {r['cpus']} cores | served req/s ratio (cores busy: "
            f"service, clients) | {w['throughput_ratio']} ({_cores(w, 1)}; {_cores(w, 2)}) | "
            f"≥ 1.6, metrics summed | {met('workers')} | |"
        )
    if "batch_file" in r:
        b = r["batch_file"]
        out.append(
            f"| caveat predict --file, {b['texts']} texts | peak RSS; throughput / in-memory | "
            f"{b['big']['peak_rss_mb']} MB; {b['throughput_ratio']} | ≤ 1536 MB; ≥ 0.9 | {met('batch_file')} | |"
        )
    return out


def _cores(workers: dict, n: int) -> str:
    busy = workers[f"workers_{n}"].get("cores_busy")
    name = f"{n} worker{'s' if n > 1 else ''}"
    return f"{name}: {busy['service']}, {busy['clients']}" if busy else f"{name}: not measured"


def parse(argv: Sequence[str] | None = None) -> tuple[Path, Options, list[str], Path | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?", default=DEFAULT_RUN, help="A calibrated run directory.")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"Comma-separated, of: {', '.join(SCENARIOS)}.")
    defaults = Options()
    for name, value in vars(defaults).items():
        flag = "--grace" if name == "grace_s" else "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=type(value), default=value, help=f"(default {value})")
    parser.add_argument("--out", type=Path, help="Also write the JSON record to this file.")
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    if not (args.run_dir / "caveat.json").is_file():
        parser.error(f"{args.run_dir} is not a run directory (no caveat.json); train and calibrate one first")
    opts = Options(**{name: getattr(args, name) for name in vars(defaults)})
    if opts.seconds <= 0 or min(opts.clients, opts.baseline_clients, opts.workers_clients, opts.fuzz_clients) < 1:
        parser.error("--seconds must be > 0 and every client count >= 1")
    return args.run_dir, opts, only, args.out


def main(argv: Sequence[str] | None = None) -> None:
    run_dir, opts, only, out = parse(argv)
    record = bench_service_fire(run_dir, opts, only)
    text = json.dumps(record, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    if not record["all_checks_pass"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
