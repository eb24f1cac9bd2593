"""The batch-file scenario of ``benchmarks.service_fire``: ``caveat predict RUN --file F --out preds.parquet`` on
a JSONL file of ``file_texts`` texts and on one a tenth the size, each in a child whose peak RSS is measured on
its own, against the in-memory path (``predict_rows``: ``Predictor.predict`` plus the calibrated rows, what the
file path writes) in this process on a subset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fire.common import Options
from benchmarks.service import texts_of

# runs a command and prints its peak RSS in kB: the only child of this wrapper, so RUSAGE_CHILDREN is its alone
PEAK = "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
PEAK += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
IN_MEMORY_TEXTS = 5_000


def write_jsonl(path: Path, texts: list[str], n: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"text": texts[i % len(texts)]}) + "\n")
    return path


def score_file(run_dir: Path, path: Path, out: Path) -> dict:
    """``caveat predict --file`` on ``path`` into ``out``: wall seconds and the child's peak RSS."""
    cmd = [sys.executable, "-c", PEAK, sys.executable, "-m", "caveat", "predict", str(run_dir)]
    cmd += ["--file", str(path), "--out", str(out)]
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"caveat predict --file failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(int(done.stdout.split()[-1]) / 1024, 1)}


def in_memory(run_dir: Path, texts: list[str], n: int) -> dict:
    """Texts per second of ``predict_rows`` on ``n`` texts in this process (model load not counted)."""
    from caveat.inference import Predictor
    from caveat.rows import predict_rows

    predictor = Predictor.from_run(run_dir)
    batch = [texts[i % len(texts)] for i in range(n)]
    predict_rows(predictor, batch[:64], top_k=5)  # warm-up
    start = time.perf_counter()
    predict_rows(predictor, batch, top_k=5)
    seconds = time.perf_counter() - start
    return {"texts": n, "seconds": round(seconds, 2), "texts_per_s": round(n / seconds, 1)}


def batch_file(run_dir: Path, opts: Options) -> dict:
    """Peak RSS of ``caveat predict --file`` (≤ 1.5 GB, and not growing with the file) and its throughput
    (≥ 0.9× the in-memory path)."""
    texts = texts_of(run_dir, 5_000)
    big = opts.file_texts
    small = max(big // 10, min(big, 1000))  # a full chunk of --chunk-size (1000) at least
    record: dict = {"texts": big, "small_texts": small}
    with tempfile.TemporaryDirectory(prefix="caveat-fire-") as folder:
        tmp = Path(folder)
        for name, n in (("small", small), ("big", big)):
            record[name] = score_file(run_dir, write_jsonl(tmp / f"{name}.jsonl", texts, n), tmp / f"{name}.parquet")
    big_run, small_run = record["big"], record["small"]
    big_run["texts_per_s"] = round(big / big_run["seconds"], 1)  # model load included: what a user waits for
    extra = big_run["seconds"] - small_run["seconds"]
    record["marginal_texts_per_s"] = round((big - small) / extra, 1) if extra > 0 else None  # load cancels out
    record["in_memory"] = in_memory(run_dir, texts, min(big, IN_MEMORY_TEXTS))
    record["throughput_ratio"] = round(big_run["texts_per_s"] / record["in_memory"]["texts_per_s"], 3)
    record["rss_ratio_big_over_small"] = round(big_run["peak_rss_mb"] / small_run["peak_rss_mb"], 3)
    record["checks"] = {
        "peak_rss_le_1_5gb": big_run["peak_rss_mb"] <= 1536,
        "rss_independent_of_size": record["rss_ratio_big_over_small"] <= 1.2,
        "throughput_ge_0_9x": record["throughput_ratio"] >= 0.9,
    }
    return record
