"""The ``onnx`` benchmark's helpers on a tiny run (the figures themselves come from ``make bench`` on CLINC150)."""

from __future__ import annotations

import pytest

from benchmarks.onnx_export import bench_onnx
from benchmarks.run import onnx_rows
from tests.conftest import one_thread

pytest.importorskip("onnxruntime")


def test_the_onnx_benchmark_runs_end_to_end_on_a_tiny_run(served_run, tmp_path):
    with one_thread():
        record = bench_onnx(served_run, tmp_path, batch=8, repeats=2, n_texts=24)
    speed = record["throughput"]
    assert list(speed) == ["pytorch_fp32", "ort_fp32", "ort_int8"]  # side by side, PyTorch first
    assert all(len(s["seconds"]) == 2 and s["texts_per_s"] > 0 for s in speed.values())
    assert speed["pytorch_fp32"]["speedup"] == 1.0
    assert record["n_texts"] == 24 and record["batch"] == 8
    assert (tmp_path / "run-onnx-int8" / "calibration.safetensors").is_file()  # the int8 run was re-calibrated
    assert record["int8"]["ece_calibrated"] is not None and record["source"]["ece_calibrated"] is not None
    assert record["accuracy_change"] == record["int8"]["accuracy"] - record["source"]["accuracy"]
    rows = onnx_rows(record)
    assert len(rows) == 2 and all(row.startswith("| CLINC150") and row.count("|") == 7 for row in rows)
