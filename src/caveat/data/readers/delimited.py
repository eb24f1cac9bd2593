"""Delimited text formats: ``csv``, ``tsv`` (with a header row) and ``label-sentence``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from caveat.data.readers._common import (
    READERS,
    Item,
    ReadContext,
    _error,
    _lines,
    _no_key,
    _only_text,
)
from caveat.data.readers._records import _text_example
from caveat.errors import DataError
from caveat.types import Task


def _read_delimited(text: str, ctx: ReadContext, fmt: str, **dialect: Any) -> Iterator[Item]:
    _no_key(fmt, ctx)
    _only_text(fmt, ctx)
    # io with newline="" splits only on \r and \n (never U+0085), as csv requires.
    rows = csv.reader(io.StringIO(text, newline=""), **dialect)
    try:
        header = next(rows, None)
        if header is None:
            return
        needed = [ctx.text_field] + ([ctx.label_field] if ctx.labelled else [])
        for field in needed:
            if field not in header:
                raise _missing_column(field, header, ctx)
        text_at = header.index(ctx.text_field)
        label_at = header.index(ctx.label_field) if ctx.label_field in header else None
        spans_at = _span_columns(header, ctx)
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            last = max(text_at, label_at or 0)
            if len(row) <= last:
                missing = header[len(row)] if len(row) < len(header) else header[last]
                yield _error(
                    ctx.file,
                    line,
                    f"the row has {len(row)} columns and no value for {missing!r}",
                    f"give every row the {len(header)} columns of the header",
                )
                continue
            label = row[label_at] if label_at is not None else None
            if label == "" and not ctx.labelled:
                label = None
            yield _text_example(row[text_at], label, line, ctx, *_spans(row, spans_at))
    except csv.Error as e:
        raise _error(ctx.file, rows.line_num, f"unreadable {fmt} ({e})", f"fix the {fmt} quoting") from None


def _span_columns(header: list[str], ctx: ReadContext) -> tuple[int, int] | None:
    """The head and tail columns of a relation file that has them (else its texts carry the markers)."""
    if ctx.task is not Task.RELATION_CLASSIFICATION or ctx.head_field not in header:
        return None
    if ctx.tail_field not in header:
        raise _missing_column(ctx.tail_field, header, ctx)
    return header.index(ctx.head_field), header.index(ctx.tail_field)


def _spans(row: list[str], spans_at: tuple[int, int] | None) -> tuple[Any, Any]:
    """The row's head and tail cells, parsed as JSON (``[3, 9]`` or ``{"start": 3, "end": 9}``) when they are."""
    if spans_at is None:
        return None, None
    cells = [row[i] if i < len(row) else "" for i in spans_at]
    out = []
    for cell in cells:
        try:
            out.append(json.loads(cell))
        except json.JSONDecodeError:
            out.append(cell)  # not JSON: _text_example names the cell and the form it needs
    return out[0], out[1]


def _missing_column(field: str, header: list[str], ctx: ReadContext) -> DataError:
    """The error for a header without ``field``: it lists the columns and suggests only one no other role uses
    (never the text column for the label)."""
    option = {ctx.text_field: "text_field", ctx.tail_field: "tail_field"}.get(field, "label_field")
    roles = {ctx.text_field, ctx.label_field}
    if ctx.task is Task.RELATION_CLASSIFICATION:
        roles |= {ctx.head_field, ctx.tail_field}
    used = roles - {field}
    free = [column for column in header if column not in used]
    columns = ", ".join(map(repr, header)) or "none"
    if free:
        fix = f"name the column with --set data.{option}=<column>, e.g. --set data.{option}={free[0]}"
    elif header:  # every column is the other role's
        other = "data.text_field" if option == "label_field" else "data.label_field"
        fix = f"add a {field!r} column to the header row (the only column, {header[0]!r}, is {other})"
    else:
        fix = f"write a header row with a {field!r} column"
    return _error(ctx.file, 1, f"the header has no column {field!r} (columns: {columns})", fix)


@READERS.register("csv")
def read_csv(text: str, ctx: ReadContext) -> Iterator[Item]:
    """Comma-separated with a header row and standard ``"`` quoting."""
    return _read_delimited(text, ctx, "csv")


@READERS.register("tsv")
def read_tsv(text: str, ctx: ReadContext) -> Iterator[Item]:
    """Tab-separated with a header row. Quotes are text (as in GLUE's TSV files), not quoting."""
    return _read_delimited(text, ctx, "tsv", delimiter="\t", quoting=csv.QUOTE_NONE)


@READERS.register("label-sentence")
def read_label_sentence(text: str, ctx: ReadContext) -> Iterator[Item]:
    """``label text`` per line, the first space separating them (SST-2, CR)."""
    _no_key("label-sentence", ctx)
    _only_text("label-sentence", ctx)
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        label, space, sentence = line.partition(" ")
        if not space:
            yield _error(
                ctx.file,
                number,
                "no space between label and text",
                "write `label text` with one space after the label",
            )
            continue
        yield _text_example(sentence, label, number, ctx)
