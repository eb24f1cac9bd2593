"""``onnx``: the clinc150 benchmark run (MiniLM) exported to ONNX, float32 and int8, against PyTorch.

Throughput of PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 at batch 32 is measured side by side in one
process: each repeat times one pass of every engine over the same texts, in turn (so a busy moment of the shared
machine hits all three), and the record keeps the medians. Then the int8 run is calibrated on its own calibration
split, and test accuracy and ECE (raw and after its temperature) are set against the source run's.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path


def export_pair(run_dir: Path, work: Path) -> dict[str, Path]:
    """Export ``run_dir`` to ONNX float32 and int8 in ``work`` (fresh each time); the two run directories."""
    from caveat.training.export import export_run

    out = {"ort_fp32": work / f"{run_dir.name}-onnx-fp32", "ort_int8": work / f"{run_dir.name}-onnx-int8"}
    for name, path in out.items():
        shutil.rmtree(path, ignore_errors=True)
        export_run(run_dir, path, quantize="int8" if name == "ort_int8" else None)
    return out


def throughput(predictors: dict, texts: list[str], *, repeats: int = 5) -> dict[str, dict]:
    """Texts per second of each predictor over ``texts``, interleaved: repeat r times every predictor once, in
    turn. Returns, per name, the median rate, the per-repeat seconds and the median rate relative to the first."""
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():  # warm-up: first-call allocations and lazy initialisation
        predictor.predict(texts[: min(len(texts), 64)])
    for _ in range(repeats):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict(texts)
            seconds[name].append(time.perf_counter() - started)
    rates = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    first = next(iter(rates.values()))
    return {
        name: {"texts_per_s": rates[name], "seconds": seconds[name], "speedup": rates[name] / first}
        for name in predictors
    }


def figures(run_dir: Path, data: str = "test") -> dict:
    """Accuracy and ECE of a run on ``data`` (raw; after its temperature when calibrated), not written to disk."""
    from caveat.evaluation.run import evaluate_run

    m = evaluate_run(run_dir, data, write=False)
    calibrated = m.get("calibrated") or {}
    return {
        "accuracy": m["accuracy"],
        "ece": m["ece"],
        "ece_calibrated": calibrated.get("ece"),
        "temperature": calibrated.get("temperature"),
    }


def bench_onnx(run_dir: Path, work: Path, *, batch: int = 32, repeats: int = 5, n_texts: int = 1000) -> dict:
    """Export the (trained) ``run_dir``, time the three engines on ``n_texts`` test texts at ``batch``, calibrate
    the int8 run and compare test accuracy and ECE with the source run's (calibrated first when it is not)."""
    import torch

    from caveat.calibration.run import calibrate_run
    from caveat.data.load import load_data
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    run = open_run(run_dir)
    exported = export_pair(run_dir, work)
    texts = [ex.text for ex in load_data(run.config).test.examples][:n_texts]
    predictors = {"pytorch_fp32": Predictor.from_run(run, batch_size=batch, calibrated=False)}
    predictors.update({k: Predictor.from_run(p, batch_size=batch, calibrated=False) for k, p in exported.items()})
    speed = throughput(predictors, texts, repeats=repeats)
    if "calibration" not in run.info:
        calibrate_run(run_dir)
    calibrate_run(exported["ort_int8"])
    source, int8 = figures(run_dir), figures(exported["ort_int8"])
    sizes = {k: sum(p.stat().st_size for p in (path / "model").glob("*.onnx")) for k, path in exported.items()}
    sizes["pytorch_fp32"] = sum(p.stat().st_size for p in (run_dir / "model").glob("*.safetensors"))
    return {
        "batch": batch,
        "repeats": repeats,
        "n_texts": len(texts),
        "threads": torch.get_num_threads(),
        "throughput": speed,
        "bytes": sizes,
        "source": source,
        "int8": int8,
        "accuracy_change": int8["accuracy"] - source["accuracy"],
        "ece_calibrated_change": (
            int8["ece_calibrated"] - source["ece_calibrated"] if source["ece_calibrated"] is not None else None
        ),
    }
