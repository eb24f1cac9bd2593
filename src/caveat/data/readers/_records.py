"""Checks of one record's fields, shared by the readers: text, label, tags, missing fields."""

from __future__ import annotations

import re
from typing import Any

from caveat.data.markers import MARKERS, mark, marker_problem, parse_span, span_problem
from caveat.data.readers._common import Item, ReadContext, _error
from caveat.errors import DataError
from caveat.types import Task, TextExample

_TAG = re.compile(r"^(?:O|[BI]-\S+)$")


def _label(value: Any, line: int, ctx: ReadContext, what: str = "label") -> str | DataError:
    # Integers are accepted so that {"label": 1} and a "1 text" line mean the same label.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return _error(ctx.file, line, f"{what} must be a string, got {value!r}", f"write the {what} as text")
    if not value.strip():
        return _error(ctx.file, line, f"empty {what}", f"give every example a {what}")
    return value


def _text(value: Any, line: int, ctx: ReadContext) -> str | DataError:
    if not isinstance(value, str):
        return _error(ctx.file, line, f"text must be a string, got {value!r}", "write the text as a string")
    if not value.strip():
        return _error(ctx.file, line, "empty text", "remove the line or give it a text")
    return value


def _text_example(text: Any, label: Any, line: int, ctx: ReadContext, head: Any = None, tail: Any = None) -> Item:
    """A checked ``TextExample``, or the ``DataError`` for its first bad field. For relation classification the
    text is put in (or checked for) the marked form: ``head`` / ``tail`` character spans, when given, are marked."""
    checked = _text(text, line, ctx)
    if isinstance(checked, DataError):
        return checked
    if ctx.task is Task.RELATION_CLASSIFICATION:
        checked = _marked(checked, head, tail, line, ctx)
        if isinstance(checked, DataError):
            return checked
    if label is None:
        if ctx.labelled:
            return _error(ctx.file, line, "label is null", "give every example a label")
        return TextExample(checked, None, line)
    checked_label = _label(label, line, ctx)
    if isinstance(checked_label, DataError):
        return checked_label
    return TextExample(checked, checked_label, line)


def _marked(text: str, head: Any, tail: Any, line: int, ctx: ReadContext) -> str | DataError:
    """``text`` in the marked form of ``caveat.data.markers``: marked at the ``head`` / ``tail`` spans when they
    are given, else checked to hold the four markers."""
    if head is None and tail is None:
        problem = marker_problem(text)
        if problem is None:
            return text
        return _error(
            ctx.file,
            line,
            problem,
            f"mark the two entities as {MARKERS[0]}…{MARKERS[1]} and {MARKERS[2]}…{MARKERS[3]} in the text, or give "
            f"their character offsets in the fields data.head_field={ctx.head_field!r} and "
            f"data.tail_field={ctx.tail_field!r}",
        )
    spans = []
    for name, field, value in (("head", ctx.head_field, head), ("tail", ctx.tail_field, tail)):
        span = parse_span(value)
        if span is None:
            return _error(
                ctx.file,
                line,
                f"the {name} field {field!r} is {value!r}, not a character span",
                f'write it as [start, end] or {{"start": s, "end": e}} (end exclusive), for both {ctx.head_field!r} '
                f"and {ctx.tail_field!r}",
            )
        spans.append(span)
    problem = span_problem(text, spans[0], spans[1])
    if problem is not None:
        return _error(ctx.file, line, problem, "give two disjoint [start, end] spans inside the unmarked text")
    return mark(text, spans[0], spans[1])


def _check_tags(tags: list[str], line: int, ctx: ReadContext) -> DataError | None:
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.match(tag):
            return _error(
                ctx.file,
                line,
                f"bad tag {tag!r}: tags are O, B-TYPE or I-TYPE",
                "convert the tags to BIO2 (or IOB1) with B-/I- prefixes",
            )
    return None


def _missing_field(field: str, present: list[str], line: int, ctx: ReadContext) -> DataError:
    option = {
        ctx.text_field: "text_field",
        ctx.label_field: "label_field",
        ctx.tokens_field: "tokens_field",
        ctx.tags_field: "tags_field",
        ctx.head_field: "head_field",
        ctx.tail_field: "tail_field",
    }[field]
    # Suggest a field that no other role already uses (e.g. not the label for the text).
    used = {ctx.text_field, ctx.label_field, ctx.tokens_field, ctx.tags_field}
    example = next((f for f in present if f not in used), "<field>")
    return _error(
        ctx.file,
        line,
        f"missing field {field!r} (fields present: {', '.join(map(repr, present)) or 'none'})",
        f"name the field with --set data.{option}=<field>, e.g. --set data.{option}={example}",
    )
