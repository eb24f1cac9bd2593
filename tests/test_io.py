"""Atomic writes leave ordinary permissions (mkstemp/mkdtemp and safetensors alone would leave 0600/0700)."""

from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
import pytest
from safetensors.numpy import save_file

from caveat.calibration.run import calibrate_run
from caveat.config import load_config
from caveat.io import atomic_dir, atomic_file, write_json_atomic, write_text_atomic
from caveat.training.loop import Trainer
from tests.conftest import one_thread, tiny_overrides


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_files_and_folders_get_umask_permissions(tmp_path):
    with umask(0o022):
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    assert mode(tmp_path / "a.json") == 0o644
    assert mode(tmp_path / "d") == 0o755


def test_safetensors_written_through_the_helpers_are_0644_not_0600(tmp_path):
    arrays = {"w": np.zeros(3, dtype=np.float32)}
    save_file(arrays, str(tmp_path / "bare.safetensors"))  # what the helpers correct, if this safetensors does it
    with umask(0o022):
        with atomic_file(tmp_path / "a.safetensors") as tmp:
            save_file(arrays, str(tmp))
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "sub").mkdir(mode=0o700)
            save_file(arrays, str(tmp / "sub" / "head.safetensors"))
            (tmp / "run.sh").write_text("#!/bin/sh\n")
            os.chmod(tmp / "run.sh", 0o700)
    assert mode(tmp_path / "a.safetensors") == 0o644
    assert (mode(tmp_path / "model"), mode(tmp_path / "model" / "sub")) == (0o755, 0o755)
    assert mode(tmp_path / "model" / "sub" / "head.safetensors") == 0o644
    assert mode(tmp_path / "model" / "run.sh") == 0o755  # an execute bit is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "bare.safetensors", "model"]


def test_modes_follow_the_umask(tmp_path):
    with umask(0o027):
        write_text_atomic(tmp_path / "t.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    assert (mode(tmp_path / "t.txt"), mode(tmp_path / "d"), mode(tmp_path / "d" / "f")) == (0o640, 0o750, 0o640)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    write_text_atomic(tmp_path / "t.txt", "old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_file(tmp_path / "t.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert (tmp_path / "t.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_a_trained_and_calibrated_run_is_readable_by_others(tiny_backbone, text_data, tmp_path):
    run = tmp_path / "run"
    with umask(0o022), one_thread():
        Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=1)), run, progress=False).fit()
        calibrate_run(run, target_risk=0.2, alpha=0.2)
    files = [p for p in run.rglob("*") if p.is_file()]
    written = {"model.safetensors", "head.safetensors", "calibration.safetensors", "caveat.json"}
    assert written <= {p.name for p in files}
    assert {str(p.relative_to(run)): oct(mode(p)) for p in files if mode(p) != 0o644} == {}
    assert {str(p.relative_to(run)): oct(mode(p)) for p in run.rglob("*") if p.is_dir() and mode(p) != 0o755} == {}
    assert mode(run) == 0o755
