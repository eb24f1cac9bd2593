"""The opt-in input log (``caveat serve --log-inputs PATH``): every /v1/predict input as one JSON line.

A line holds what an operator needs to watch and recalibrate on production traffic, and nothing of the
request around it (no header, so never the API key)::

    {"time": "2025-01-31T12:00:00.123Z", "text": "...", "label": "refund",
     "score": "least_confidence", "uncertainty": 0.12, "decision": "answer"}

NER lines hold the text and its ``spans`` as the row gives them (without their reasons). The event loop
only queues lines; one thread (``logging``'s ``QueueListener``) writes them through a
``RotatingFileHandler``, so a request never waits for the disk and lines of concurrent requests never
interleave. ``caveat.data.readers.logged.read_logged_texts`` reads the texts back.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path

from caveat.errors import ConfigError

log = logging.getLogger(__name__)


def log_entries(rows: Iterable[dict], *, score: str | None, time: datetime | None = None) -> list[dict]:
    """One JSON-ready line per served row (text and NER rows alike).

    Parameters
    ----------
    rows : the rows /v1/predict returned for one request.
    score : the calibration's uncertainty score (``Calibration.score``), logged as ``score`` and
        ``uncertainty``; None for NER and uncalibrated runs.
    time : when they were served (default now), written in UTC.
    """
    stamp = (time or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
    out = []
    for row in rows:
        entry = {"time": stamp.replace("+00:00", "Z"), "text": row["text"]}
        if "spans" in row:  # NER: each span's place, type, probability and (calibrated) confidence and decision
            entry["spans"] = [{k: _finite(v) for k, v in span.items() if k != "reason"} for span in row["spans"]]
        else:
            entry["label"] = row["label"]
            if score is not None and score in row.get("uncertainty", {}):
                entry["score"], entry["uncertainty"] = score, _finite(row["uncertainty"][score])
            if "decision" in row:
                entry["decision"] = row["decision"]
        out.append(entry)
    return out


def _finite(value):
    """JSON has no NaN or infinity: a non-finite float is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _JsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # one line whatever the text holds: json.dumps escapes newlines; non-ASCII text stays readable
        return json.dumps(record.msg, ensure_ascii=False)


class _RotatingLines(RotatingFileHandler):
    """Rotation by bytes, never of an empty file (a line longer than ``maxBytes`` gets a file of its own), and
    a failed write reported without the line (it holds user text) to ``on_error``."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int, on_error: Callable[[], None]):
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.on_error = on_error
        self.setFormatter(_JsonLine())

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        size = self.stream.seek(0, 2)
        return size > 0 and size + len(self.format(record).encode("utf-8")) + 1 > self.maxBytes

    def handleError(self, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        log.error("could not write a line to the input log %s (%s: %s)", self.baseFilename, type(err).__name__, err)
        self.on_error()


class InputLog:
    """Append log entries to ``path`` from one writer thread, rotated by size.

    Parameters
    ----------
    path : the log file; its folder is created. Rotated files are ``path.1`` (newest) .. ``path.<backups>``.
    max_bytes : a line that would take the file past this size first rotates it.
    backups : rotated files kept; the oldest is deleted.
    on_error : called once per line that could not be written (for a metric).

    ``start()`` the writer thread, ``write()`` from anywhere (it never blocks on the disk), ``close()`` to
    write what is queued and close the file.
    """

    def __init__(self, path: str | Path, *, max_bytes: int, backups: int, on_error: Callable[[], None] | None = None):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = _RotatingLines(self.path, max_bytes=max_bytes, backups=backups, on_error=on_error or _nothing)
        except OSError as err:  # fail at start-up, not on the first request
            raise ConfigError(
                f"{{log_inputs}}={str(self.path)!r} cannot be opened for appending ({err.strerror or err}): "
                "give a writable file path",
                fields=("log_inputs",),
            ) from None
        self._handler = handler
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._listener = QueueListener(self._queue, handler)
        self._running = False

    def start(self) -> InputLog:
        """Start the writer thread."""
        if not self._running:
            self._listener.start()
            self._running = True
        return self

    def write(self, entries: Iterable[dict]) -> None:
        """Queue one line per entry (JSON-ready dicts); written in this order, each line whole."""
        for entry in entries:
            self._queue.put_nowait(logging.makeLogRecord({"msg": entry, "levelno": logging.INFO}))

    def close(self) -> None:
        """Write every queued line, stop the thread and close the file (blocks: call it off the event loop)."""
        if self._running:
            self._listener.stop()
            self._running = False
        self._handler.close()


def _nothing() -> None:
    pass
