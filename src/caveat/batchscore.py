"""Score a file of any size in bounded memory, resumably: ``caveat predict RUN --file big.jsonl --out preds.jsonl``.

The inputs are read lazily (``iter_inputs``: a generator, never a list), scored ``chunk_size`` at a time
and each chunk's rows appended to the output at once, so memory holds one chunk whatever the file's size.
Output row ``i`` is input ``i``: on a restart with the same output, the rows already there are counted
(``Sink.done``) and that many inputs skipped unread-by-the-model. A chunk is written whole or not at all
as far as a restart can see: a JSON-lines output is appended in one write and fsynced, and a trailing
partial line (a crash mid-write) is cut off before resuming; a Parquet output is a directory of part
files, each written to a temporary name and renamed into place. MC dropout draws input ``i`` from
``input_seed(seed, i)`` alone, so chunking and restarts do not change any row.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.progress import phase
from caveat.rows import add_seeded_mc_dropout, predict_rows
from caveat.types import Task

INPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")  # and anything else: one text per line
OUTPUT_SUFFIXES = (".jsonl", ".parquet")
PART = "part-{:06d}.parquet"
Enrich = Callable[[Predictor, list[dict]], None]  # adds to a chunk's rows in place (e.g. a certificate)


def _error(path: Path, line: int | None, problem: str, fix: str) -> DataError:
    where = f"{path}:{line}" if line is not None else str(path)
    return DataError(f"{where}: {problem}. Fix: {fix}")


def _input(value: dict, path: Path, where: int) -> str | list[str]:
    """A record's ``text`` (a string) or ``tokens`` (a list of words, NER runs)."""
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    if isinstance(value, dict) and isinstance(value.get("tokens"), list):
        return [str(w) for w in value["tokens"]]
    present = ", ".join(map(repr, value)) if isinstance(value, dict) else "none"
    raise _error(
        path, where, f"no string field 'text' nor list field 'tokens' (fields: {present})", 'give {"text": ...}'
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of the non-blank lines, split on "\\n" only (U+2028 occurs inside real texts)."""
    with path.open(encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n").removesuffix("\r")
            if line.strip():
                yield number, line


def iter_inputs(path: str | Path) -> Iterator[str | list[str]]:
    """The inputs of ``path``, one at a time: ``.jsonl`` (field ``text``, or ``tokens`` for NER), ``.csv``
    (column ``text``), ``.parquet`` (column ``text`` or ``tokens``, read a record batch at a time), anything
    else one text per non-blank line. Raises ``DataError`` naming the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Fix: give the path of a .jsonl, .csv, .parquet or .txt file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for number, line in _lines(path):
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise _error(
                    path, number, f"malformed JSON ({e.msg})", 'one object per line: {"text": "..."}'
                ) from None
            yield _input(value, path, number)
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if "text" not in (reader.fieldnames or []):
                raise _error(path, 1, f"no column 'text' (columns: {reader.fieldnames})", "add a header row with text")
            for record in reader:
                yield record["text"]
    elif suffix == ".parquet":
        yield from _parquet_inputs(path)
    else:
        for _, line in _lines(path):
            yield line


def _parquet_inputs(path: Path, batch: int = 1024) -> Iterator[str | list[str]]:
    pq = _pyarrow_parquet()
    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    column = "text" if "text" in names else "tokens" if "tokens" in names else None
    if column is None:
        raise _error(path, None, f"no column 'text' nor 'tokens' (columns: {names})", "name the input column text")
    for record_batch in f.iter_batches(batch_size=batch, columns=[column]):
        yield from record_batch.column(0).to_pylist()


def count_inputs(path: str | Path) -> int | None:
    """How many inputs ``iter_inputs`` will yield, when cheap to know without parsing (for the progress bar):
    a Parquet file's row count, a line file's non-blank lines; None for CSV (quoted fields span lines)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _pyarrow_parquet().ParquetFile(path).metadata.num_rows
    if suffix == ".csv":
        return None
    return sum(1 for _ in _lines(path))


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet needs pyarrow: pip install pyarrow (or use .jsonl / .csv files)") from None
    return pq


class Sink(Protocol):
    def done(self) -> int:
        """Rows already written (a restart skips that many inputs)."""

    def write(self, rows: list[dict]) -> None:
        """Append one chunk's rows, whole."""

    def close(self) -> None: ...


class JsonlSink:
    """JSON lines appended a chunk per write (fsynced); ``done`` counts complete lines and cuts a partial last one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def done(self) -> int:
        if not self.path.exists():
            return 0
        lines, complete = 0, 0  # complete: bytes up to and including the last "\n"
        with self.path.open("rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                if b"\n" in block:
                    complete = f.tell() - len(block) + block.rindex(b"\n") + 1
        if complete != self.path.stat().st_size:  # a crash mid-write: the half row is not an answer
            os.truncate(self.path, complete)
        return lines

    def write(self, rows: list[dict]) -> None:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
        with self.path.open("ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        pass


class ParquetSink:
    """A directory of Parquet part files (``part-000000.parquet``, ...), one per chunk, each renamed into place
    once complete: pandas, pyarrow, polars and duckdb read the directory as one table. Nested values
    (probabilities, uncertainty, spans, ...) are stored as JSON strings, so every part has the same schema."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.pq = _pyarrow_parquet()

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def done(self) -> int:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} is a file; a Parquet output is a directory of parts: choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.glob("*.tmp"):  # a part a crash left unfinished
            tmp.unlink()
        return sum(self.pq.ParquetFile(p).metadata.num_rows for p in self._parts())

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        flat = [{k: v if _scalar(v) else json.dumps(v, ensure_ascii=False) for k, v in row.items()} for row in rows]
        table = pa.Table.from_pylist(flat)
        table = table.cast(
            pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
        )
        final = self.path / PART.format(len(self._parts()))
        tmp = final.with_suffix(".tmp")
        self.pq.write_table(table, tmp)
        os.replace(tmp, final)

    def close(self) -> None:
        pass


def _scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


class StdoutSink:
    """JSON lines on ``stream`` (no resume); a lone row is printed indented, as ``caveat predict TEXT`` does."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.first: dict | None = None
        self.count = 0

    def done(self) -> int:
        return 0

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self.count += 1
            if self.count == 1:
                self.first = row  # held back until we know whether it is alone
                continue
            if self.first is not None:
                self.stream.write(json.dumps(self.first, ensure_ascii=False) + "\n")
                self.first = None
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.first is not None:
            self.stream.write(json.dumps(self.first, ensure_ascii=False, indent=2) + "\n")
            self.first = None


def open_sink(out: str | Path | None) -> Sink:
    """Where rows go: stdout (None), a ``.jsonl`` file or a ``.parquet`` directory."""
    if out is None:
        return StdoutSink()
    suffix = Path(out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"cannot write {out}: choose an output ending in {' or '.join(OUTPUT_SUFFIXES)}")
    return JsonlSink(out) if suffix == ".jsonl" else ParquetSink(out)


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` consecutive items (the last may be shorter), pulled from ``items`` one list at a time;
    a bad ``size`` fails here, not at the first chunk."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"chunk size must be an integer >= 1. Got {size!r}.")
    return _chunks(iter(items), size)


def _chunks(it: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _check_chunk(chunk: Sequence, positions: Iterable[int]) -> None:
    for position, x in zip(positions, chunk):
        if not (x.strip() if isinstance(x, str) else x):
            raise DataError(f"input {position + 1} is empty. Fix: give non-empty texts (or drop that row)")


def check_method(task: Task, method: str) -> None:
    """Refuse MC dropout for a NER run before any model pass (its sampling is for text classifiers so far)."""
    if method == "mc_dropout" and task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError("method 'mc_dropout' is for text-classification runs so far; use 'deterministic'")


def score_chunk(
    predictor: Predictor,
    chunk: Sequence,
    positions: Sequence[int],
    *,
    top_k: int = 0,
    method: str = "deterministic",
    samples: int = 10,
    seed: int = 0,
    enrich: Enrich | None = None,
) -> list[dict]:
    """The rows of ``chunk``, whose inputs sit at ``positions`` (0-based) in their file: ``predict_rows``'s, and
    with ``method="mc_dropout"`` input ``i`` sampled from ``input_seed(seed, i)`` alone. Both the stream here and
    the Ray actors (caveat.raybatch) build rows with it, so a row does not depend on its chunk, worker or restart.
    ``enrich(predictor, rows)``, when given, adds to the rows in place (``caveat predict --file --certify`` passes
    SAFER's ``add_certified``, which seeds each text from its text alone, so the rows still do not depend on the
    chunk)."""
    _check_chunk(chunk, positions)
    rows = predict_rows(predictor, chunk, top_k=top_k).rows
    if method == "mc_dropout":
        for position, x, row in zip(positions, chunk, rows):
            add_seeded_mc_dropout(predictor, [x], [row], samples=samples, seed=seed, start=position, top_k=top_k)
    if enrich is not None:
        enrich(predictor, rows)
    return rows


def score_stream(
    predictor: Predictor,
    inputs: Iterable,
    sink: Sink,
    *,
    chunk_size: int = 1000,
    top_k: int = 0,
    method: str = "deterministic",
    samples: int = 10,
    seed: int = 0,
    total: int | None = None,
    enrich: Enrich | None = None,
) -> int:
    """Score ``inputs`` (consumed lazily: at most one chunk is held) into ``sink``, after skipping the
    ``sink.done()`` inputs a previous run wrote. Rows are ``predict_rows``'s; with ``method="mc_dropout"``
    input ``i`` is sampled from ``input_seed(seed, i)``; ``enrich``: as in ``score_chunk``. ``total``: the inputs
    expected, for the progress bar. Returns the number of rows the output holds."""
    check_method(predictor.task, method)
    start = sink.done()
    position = start
    rest = itertools.islice(iter(inputs), start, None)  # skipped inputs are read, not scored
    with phase("predict", total=total, start=start) as bar:
        for chunk in chunked(rest, chunk_size):
            positions = range(position, position + len(chunk))
            rows = score_chunk(
                predictor, chunk, positions, top_k=top_k, method=method, samples=samples, seed=seed, enrich=enrich
            )
            sink.write(rows)
            position += len(chunk)
            bar.advance(len(chunk))
    sink.close()
    return position
