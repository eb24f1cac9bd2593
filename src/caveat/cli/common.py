"""Helpers shared by the subcommands: JSON output and config assembly from flags."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caveat.config import RunConfig


def emit(obj: Any) -> None:
    """Print one JSON object on stdout, from the main process only (progress and logs go to stderr)."""
    from caveat.training.run import is_main_process

    if not is_main_process():
        return
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def build_config(config: Path | None, overrides: list[str], **flags: Any) -> RunConfig:
    """Merge a config file, shortcut flags (``--train``, ``--task`` ...) and ``--set`` overrides (last wins)."""
    from caveat.config import load_config

    data_keys = {
        "train": "train",
        "validation": "validation",
        "test": "test",
        "calibration": "calibration",
        "text_field": "text_field",
        "label_field": "label_field",
        "format": "format",
    }
    extra: dict[str, Any] = {}
    for flag, key in data_keys.items():
        if flags.get(flag) is not None:
            value = flags[flag]
            if flag in ("train", "validation", "test", "calibration"):
                value = str(Path(value).expanduser().resolve()) if "#" not in str(value) else value
            extra.setdefault("data", {})[key] = value
    if flags.get("task") is not None:
        extra["task"] = flags["task"]
    if flags.get("model") is not None:
        extra.setdefault("model", {})["name_or_path"] = flags["model"]
    return load_config(config, overrides, **extra)


def progress_printer(what: str, *, every: int = 25):
    """A ``progress(done, total)`` callback that logs every ``every`` items (and the last) to stderr."""
    import logging

    log = logging.getLogger("caveat")

    def report(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            log.info("%s: %d/%d", what, done, total)

    return report
