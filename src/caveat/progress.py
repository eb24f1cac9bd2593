"""Progress of long phases on stderr: a rich bar on a terminal, else a plain line every ``every`` seconds.

Off unless switched on: the library is quiet, and the command line switches it on for the command it runs
(``showing``), except under ``caveat --quiet`` or ``CAVEAT_QUIET=1``. stdout is never written: it is the
commands' JSON or tables.

A phase shorter than ``CAVEAT_PROGRESS_AFTER`` seconds (default 2) prints nothing; a longer one, off a terminal,
prints a line then, one every ``CAVEAT_PROGRESS_EVERY`` seconds (default 10) and one at its end::

    caveat: calibrate: predict on calibration 512/1500 (34%, 12 s, ETA 23 s)

One phase shows at a time in a thread: a phase begun inside another (the predictions inside an attack, each
explanation's model calls) stays silent, so that the outer one reads as what the command is doing. Workflows
name what a pass works on with ``subject`` (``with subject("test"): predictor.predict(...)``), which every
phase begun inside it adds to its title.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

QUIET_ENV = "CAVEAT_QUIET"  # set (and not 0/false/no): no progress whatever the command line asks
EVERY_ENV = "CAVEAT_PROGRESS_EVERY"  # seconds between plain lines off a terminal
AFTER_ENV = "CAVEAT_PROGRESS_AFTER"  # a phase that ends sooner prints nothing
EVERY, AFTER = 10.0, 2.0


class _Switch:
    """Whether phases show, and the command named at the start of each line (``caveat: calibrate: ...``)."""

    on = False
    command: str | None = None


_local = threading.local()  # per thread: the phase showing (``active``) and the ``subjects`` named


def enable(on: bool = True, *, command: str | None = None) -> None:
    """Show (or stop showing) the progress of the phases that begin from now on; ``command`` prefixes each line."""
    _Switch.on, _Switch.command = on, command


@contextmanager
def showing(on: bool = True, *, command: str | None = None) -> Iterator[None]:
    """``enable(on, command=...)`` for the duration of the block, then the switch as it was (the CLI's callback
    holds this open while its command runs, so library calls after it stay quiet)."""
    before = _Switch.on, _Switch.command
    enable(on, command=command)
    try:
        yield
    finally:
        _Switch.on, _Switch.command = before


def quiet_by_env() -> bool:
    """True when ``CAVEAT_QUIET`` asks for silence (any value but empty, 0, false or no)."""
    return os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_shown() -> bool:
    """Whether a phase begun now (outside any other) would show."""
    return _Switch.on and not quiet_by_env() and int(os.environ.get("RANK", "0")) == 0


@contextmanager
def subject(name: str) -> Iterator[None]:
    """Name what the phases begun inside this block work on (a split, a file): ``predict`` -> ``predict on test``."""
    subjects = _subjects()
    subjects.append(name)
    try:
        yield
    finally:
        subjects.pop()


def _subjects() -> list[str]:
    if not hasattr(_local, "subjects"):
        _local.subjects = []
    return _local.subjects


def _seconds(name: str, default: float) -> float:
    """A non-negative number of seconds from the environment variable ``name``; ``default`` when unset or not one."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 else default


def duration(seconds: float) -> str:
    """``7 s``, ``3 min 4 s``, ``2 h 5 min``: how long, read at a glance."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Phase:
    """One long phase: ``advance`` as its items are done, ``close`` (or leave the ``with`` block) at its end.

    Parameters
    ----------
    what : what it does, e.g. ``"predict"``; the innermost ``subject`` is added (``"predict on test"``).
    total : items it will do (inputs, examples, optimizer steps); None when unknown (no percentage or ETA).
    start : items already done (a resumed training run); the rate and ETA count only those done from here.
    show : False keeps this phase silent whatever the switch says (``Trainer(progress=False)``).
    every, after : seconds between plain lines, and before the first; default from ``CAVEAT_PROGRESS_EVERY``
        and ``CAVEAT_PROGRESS_AFTER`` (10 and 2).
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        start: int = 0,
        show: bool = True,
        every: float | None = None,
        after: float | None = None,
    ):
        subjects = _subjects()
        self.title = f"{what} on {subjects[-1]}" if subjects else what
        self.total, self.done, self.start, self.info = total, start, start, ""
        self.every = _seconds(EVERY_ENV, EVERY) if every is None else every
        self.after = _seconds(AFTER_ENV, AFTER) if after is None else after
        self.shown = show and getattr(_local, "active", None) is None and is_shown()
        self.began, self.last_line, self.last_done = time.monotonic(), None, None
        self.bar: Any = None  # the rich bar, once a terminal phase has run ``after`` seconds
        self.terminal = self.shown and sys.stderr.isatty()
        self.closed = False
        if self.shown:
            _local.active = self

    def advance(self, n: int = 1, *, info: str | None = None) -> None:
        """``n`` more items done; ``info`` (e.g. ``"loss 0.41  52 ex/s"``) follows the count until replaced."""
        self.done += n
        if info is not None:
            self.info = info
        if self.shown:
            self._show(final=False)

    def close(self) -> None:
        """The phase is over: its last line (when it ran long enough to show), and the next phase may show."""
        self._end(final=True)

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind, *_) -> None:
        self._end(final=kind is None)  # a phase that failed says nothing more: the error will

    def _end(self, *, final: bool) -> None:
        if self.closed or not self.shown:
            return
        self.closed = True
        try:
            if final:
                self._show(final=True)
            if self.bar is not None:
                self.bar.stop()
        finally:
            _local.active = None

    def _show(self, *, final: bool) -> None:
        now = time.monotonic()
        if now - self.began < self.after:
            return
        if self.terminal:
            self._show_bar()
        elif self._line_due(now, final=final):
            self.last_line, self.last_done = now, self.done
            sys.stderr.write(self.line(now) + "\n")
            sys.stderr.flush()

    def _line_due(self, now: float, *, final: bool) -> bool:
        """The end gets a line unless the last one already said as much; else one every ``every`` seconds."""
        if final:
            return self.done != self.last_done
        return self.last_line is None or now - self.last_line >= self.every

    def line(self, now: float | None = None) -> str:
        """The plain line: ``caveat: COMMAND: TITLE DONE/TOTAL (PERCENT, ELAPSED, ETA REMAINING) INFO``."""
        elapsed = (time.monotonic() if now is None else now) - self.began
        prefix = f"caveat: {_Switch.command}: " if _Switch.command else "caveat: "
        if self.total is None:
            figures = f"{self.done} ({duration(elapsed)})"
        else:
            figures = f"{self.done}/{self.total} ({self.done / max(1, self.total):.0%}, {duration(elapsed)}"
            rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
            if self.done < self.total and rate > 0:
                figures += f", ETA {duration((self.total - self.done) / rate)}"
            figures += ")"
        return f"{prefix}{self.title} {figures}" + (f"  {self.info}" if self.info else "")

    def _show_bar(self) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=False,
                get_time=time.monotonic,  # the clock ``began`` was read on
            )
            self.task = self.bar.add_task(self.title, total=self.total, completed=self.done, info=self.info)
            self.bar.tasks[-1].start_time = self.began  # the bar appears ``after`` seconds in; its clock starts now
            self.bar.start()
        self.bar.update(self.task, completed=self.done, info=self.info)


def phase(what: str, total: int | None, **options: Any) -> Phase:
    """A ``Phase`` (see there for ``options``): ``with phase("predict", total=len(rows)) as bar: bar.advance(b)``."""
    return Phase(what, total, **options)
