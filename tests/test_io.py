"""Atomic writes leave ordinary permissions (mkstemp/mkdtemp alone would leave 0600/0700)."""

from __future__ import annotations

import os
import stat

from caveat.io import atomic_dir, write_json_atomic


def test_atomic_files_and_folders_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
