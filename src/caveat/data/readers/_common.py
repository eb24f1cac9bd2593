"""What every reader shares: the read context, the registry, error messages and decoding.

Readers take the decoded file text and a ``ReadContext`` and yield either an example
or a ``DataError`` for a bad record, so that ``read_split`` alone decides whether a bad
record stops the run or is skipped and counted (``skip_invalid``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from caveat.errors import DataError
from caveat.registry import Registry
from caveat.types import Task, TextExample, TokenExample


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs besides the text: where it came from and which fields to use."""

    file: str
    task: Task
    key: str | None = None
    text_field: str = "text"
    label_field: str = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    head_field: str = "head"
    tail_field: str = "tail"
    labelled: bool = True


Item = TextExample | TokenExample | DataError
Reader = Callable[[str, ReadContext], Iterator[Item]]

READERS: Registry[Reader] = Registry("data format")


def _error(file: str, line: int | None, problem: str, fix: str) -> DataError:
    """``file:line: problem. Fix: fix`` -- every data message names the place and the remedy."""
    where = f"{file}:{line}" if line is not None else file
    return DataError(f"{where}: {problem}. Fix: {fix}")


def _lines(text: str) -> list[str]:
    """Split on "\\n" only (never ``splitlines``: U+0085 / U+2028 occur inside real texts)."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _decode(path: Path, file: str) -> str:
    """The file's text as UTF-8 without a byte-order mark; raises ``DataError`` naming the bad byte."""
    if not path.exists():
        raise _error(file, None, "file not found", f"check the path (relative to {Path.cwd()})")
    if not path.is_file():
        raise _error(file, None, "is not a file", "give the path of a data file, not a folder")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise _error(
            file,
            line,
            f"byte 0x{raw[e.start]:02x} at column {column} is not valid UTF-8",
            "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`)",
        ) from None
    # Spreadsheet programs start UTF-8 files with a byte-order mark; it is not content.
    return text.removeprefix("\ufeff")


def _only_text(fmt: str, ctx: ReadContext) -> None:
    """Raise unless the task labels whole texts (for formats that hold only texts)."""
    if not ctx.task.classifies_texts:
        raise _error(
            ctx.file,
            None,
            f"the {fmt} format holds text classification data, not {ctx.task.value}",
            "use jsonl, json or conll for token classification",
        )


def _no_key(fmt: str, ctx: ReadContext) -> None:
    """Raise if a ``#key`` was given for a format that holds a single split."""
    if ctx.key is not None:
        raise _error(
            ctx.file,
            None,
            f"'#{ctx.key}' selects a split of a JSON file, but {fmt} files hold one split",
            "remove the '#...' suffix from the path",
        )
