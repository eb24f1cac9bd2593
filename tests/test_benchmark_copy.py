"""benchmarks/tasks.py's uncalibrated_copy: what the benches calibrate afresh holds no trace of the old calibration."""

from __future__ import annotations

import json

from benchmarks.tasks import uncalibrated_copy


def test_the_copy_drops_calibration_logs_metrics_and_the_calibration_summary(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "model" / "weights.bin").write_bytes(b"w")
    for name in ("calibration.safetensors", "calibration.json", "metrics.json", "logs/events"):
        (run / name).write_text("x")
    (run / "caveat.json").write_text(json.dumps({"task": "t", "calibration": {"temperature": 1.3}}))
    stale = tmp_path / "copy"
    (stale / "old").mkdir(parents=True)  # a copy left by an earlier bench is replaced, not merged into

    copy = uncalibrated_copy(run, stale)
    assert copy == stale and sorted(p.name for p in copy.iterdir()) == ["caveat.json", "model"]
    assert (copy / "model" / "weights.bin").read_bytes() == b"w"
    assert json.loads((copy / "caveat.json").read_text()) == {"task": "t"}
    assert "calibration" in json.loads((run / "caveat.json").read_text())  # the source is untouched
