"""Atomic writes: a reader sees the old file or the new one, never half of one.

What these helpers write gets the modes a plain ``open()`` or ``mkdir()`` would give it (0644 and 0755 under
the usual umask 022), although their temporary files start 0600 (``mkstemp``, and safetensors' own
``save_file``) and their temporary folders 0700 (``mkdtemp``): a run directory must be readable by whoever
may read the folder it sits in, e.g. a service running as another user.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA_ROOT_ENV = "CAVEAT_DATA"  # the shared data sets (benchmarks, caveat demo, generate's files, attack lexicons)
DEFAULT_DATA_ROOT = "../shared/data"


def data_root() -> Path:
    """``$CAVEAT_DATA``, default ``../shared/data`` (not resolved: relative to the working directory)."""
    return Path(os.environ.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)).expanduser()


def _umask() -> int:
    """The process's umask. Read from /proc where it is there: ``os.umask`` can only read it by setting it,
    which for a moment would widen what other threads create."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the narrowest moment if another thread creates a file right now
    os.umask(mask)
    return mask


def ordinary_modes(path: str | Path) -> None:
    """Give ``path`` (a file, or a folder and everything under it) the modes ``open()`` and ``mkdir()`` give:
    0666 for files (0777 for one with an execute bit) and 0777 for folders, less the umask. Links are skipped."""
    mask = _umask()
    path = Path(path)
    if path.is_symlink():
        return
    paths = [path]
    if path.is_dir():
        for root, dirs, files in os.walk(path):  # does not follow links to folders
            paths += [Path(root, name) for name in dirs + files]
    for p in paths:
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        full = 0o777 if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0o666
        os.chmod(p, full & ~mask)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder for a writer that takes a path (e.g. safetensors'
    ``save_file``); when the block succeeds the file gets ordinary modes, is flushed to disk and replaces
    ``path`` in one rename. When it fails ``path`` is untouched and the temporary file removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        ordinary_modes(tmp)  # after the writer: one that replaces the file (safetensors does) makes it 0600 again
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` as a whole.

    The swap is two renames (old aside, new in place), so ``path`` is at every moment either the
    complete old folder or the complete new one; a crash leaves at most a ``.old``/``.tmp`` sibling.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        ordinary_modes(tmp)  # mkdtemp makes 0700; what was written inside may be 0600 (safetensors)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
