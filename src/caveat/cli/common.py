"""Helpers shared by the subcommands: JSON output, config assembly from flags, and tables for people."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.table import Table

    from caveat.config import RunConfig

TABLE_WIDTH = (80, 100)  # tables are laid out for a terminal of this many columns, clamped
# a name breaks after one of these, so that no word of it is split: paths, snake_case, file.ext, set#split
_PIECE = re.compile(r"[^/_.\-#:\s]+[/_.\-#:\s]*|[/_.\-#:\s]+")


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
        "head_field": "head_field",
        "tail_field": "tail_field",
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


def table_width() -> int:
    """Columns for a table: the terminal's (or ``$COLUMNS``) clamped to 80..100; 100 when not a terminal."""
    low, high = TABLE_WIDTH
    if sys.stdout.isatty():
        columns = shutil.get_terminal_size((high, 24)).columns
    else:
        value = os.environ.get("COLUMNS", "")
        columns = int(value) if value.isdigit() else high
    return min(max(columns, low), high)


def table_console(width: int | None = None) -> Console:
    """A rich console for tables on stdout; no markup, emoji or highlighting, so names print as given."""
    from rich.console import Console

    return Console(width=width or table_width(), markup=False, emoji=False, highlight=False)


def print_tables(console: Console, *renderables: Any) -> None:
    """Print each renderable on stdout, a blank line between, without the spaces rich pads each line with."""
    with console.capture() as capture:
        for i, renderable in enumerate(renderables):
            if i:
                console.print()
            console.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))
    sys.stdout.flush()


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by an ellipsis in the middle (the start and the end stay)."""
    if len(text) <= width:
        return text
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def wrap_name(text: str, width: int) -> str:
    """``text`` on lines of at most ``width`` characters, broken only after ``/ _ . - # :`` or a space so that
    no word is split; a single word longer than ``width`` is shortened in the middle."""
    lines: list[str] = []
    line = ""
    for piece in _PIECE.findall(text):
        if len(line + piece.rstrip()) <= width:
            line += piece
            continue
        if line.strip():
            lines.append(line.rstrip())
        word = piece.rstrip()
        line = piece if len(word) <= width else shorten(word, width) + piece[len(word) :]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return "\n".join(lines)


def fit_table(console: Console, *layouts: Callable[[int], Table], widest: int = 32, narrowest: int = 10) -> Table:
    """The first of ``layouts`` (``layout(name_width) -> Table``, fullest first) at the widest name column that fits
    the console at its natural width; rich would otherwise narrow the widest column and split a name mid-word.
    When none fits, the last layout at ``narrowest``."""
    unbounded = console.options.update_width(10_000)  # a table measured at the console's width is clamped to it
    for layout in layouts:
        for name_width in range(widest, narrowest - 1, -2):
            table = layout(name_width)
            if console.measure(table, options=unbounded).maximum <= console.width:
                return table
    return layouts[-1](narrowest)
