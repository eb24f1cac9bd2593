"""JSON formats: ``jsonl`` (one record per line) and ``json`` (a list, or a dict of splits)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from caveat.data.readers._common import READERS, Item, ReadContext, _error, _lines, _no_key
from caveat.data.readers._records import _check_tags, _missing_field, _text_example
from caveat.data.readers.conll import iob1_to_bio2
from caveat.types import Task, TokenExample

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _from_record(value: Any, line: int, ctx: ReadContext) -> Item:
    """One JSON value -> an example, for both ``json`` and ``jsonl``."""
    if ctx.task is Task.TOKEN_CLASSIFICATION:
        return _token_record(value, line, ctx)
    if isinstance(value, list) and len(value) == 2:
        return _text_example(value[0], value[1], line, ctx)
    if not isinstance(value, dict):
        return _error(
            ctx.file,
            line,
            f"expected an object with fields {ctx.text_field!r} and {ctx.label_field!r} "
            f"or a [text, label] pair, got {json.dumps(value)[:80]}",
            f'write one record as {{"{ctx.text_field}": "...", "{ctx.label_field}": "..."}}',
        )
    if ctx.text_field not in value:
        return _missing_field(ctx.text_field, list(value), line, ctx)
    if ctx.label_field not in value and ctx.labelled:
        return _missing_field(ctx.label_field, list(value), line, ctx)
    head, tail = value.get(ctx.head_field), value.get(ctx.tail_field)
    return _text_example(value[ctx.text_field], value.get(ctx.label_field), line, ctx, head, tail)


def _token_record(value: Any, line: int, ctx: ReadContext) -> Item:
    if not isinstance(value, dict):
        return _error(
            ctx.file,
            line,
            f"expected an object with fields {ctx.tokens_field!r} and {ctx.tags_field!r}",
            f'write one sentence as {{"{ctx.tokens_field}": [...], "{ctx.tags_field}": [...]}}',
        )
    if ctx.tokens_field not in value:
        return _missing_field(ctx.tokens_field, list(value), line, ctx)
    if ctx.tags_field not in value and ctx.labelled:
        return _missing_field(ctx.tags_field, list(value), line, ctx)
    tokens, tags = value[ctx.tokens_field], value.get(ctx.tags_field)
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        return _error(
            ctx.file,
            line,
            "tokens must be a list of non-empty strings",
            "split the text into words",
        )
    if not tokens:
        return _error(ctx.file, line, "empty sentence", "remove it or give it tokens")
    if tags is None:
        if ctx.labelled:
            return _error(ctx.file, line, "tags are null", "give every token a tag")
        return TokenExample(tuple(tokens), None, line)
    if not isinstance(tags, list) or len(tags) != len(tokens):
        n = len(tags) if isinstance(tags, list) else type(tags).__name__
        return _error(
            ctx.file,
            line,
            f"{len(tokens)} tokens but {n} tags",
            "give exactly one tag per token",
        )
    bad = _check_tags(tags, line, ctx)
    return bad or TokenExample(tuple(tokens), tuple(iob1_to_bio2(tags)), line)


@READERS.register("jsonl")
def read_jsonl(text: str, ctx: ReadContext) -> Iterator[Item]:
    """One JSON record per line (blank lines ignored); see ``read_split`` for the layouts."""
    _no_key("jsonl", ctx)
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            yield _error(
                ctx.file,
                number,
                f"malformed JSON ({e.msg} at column {e.colno})",
                "write one complete JSON object per line",
            )
            continue
        yield _from_record(value, number, ctx)


def _array_items(text: str, pos: int) -> Iterator[tuple[int, Any]]:
    """Yield (offset, value) for each item of the (already validated) JSON array at ``pos``.

    Parsing item by item is what gives every record its line number for messages.
    """
    pos = _WS.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        value, end = _DECODER.raw_decode(text, pos)
        yield pos, value
        pos = _WS.match(text, end).end()
        if text.startswith("]", pos):
            return
        pos = _WS.match(text, pos + 1).end()  # skip the ','


def _value_offset(text: str, key: str) -> int:
    """Offset of the value under ``key`` in the (validated) top-level JSON object."""
    found, pos = -1, _WS.match(text, 0).end() + 1
    while True:
        pos = _WS.match(text, pos).end()
        if text.startswith("}", pos):
            return found
        name, pos = _DECODER.raw_decode(text, pos)
        pos = _WS.match(text, _WS.match(text, pos).end() + 1).end()  # skip the ':'
        if name == key:
            found = pos  # json.loads keeps the last duplicate key, and so do we
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()
        if text.startswith(",", pos):
            pos += 1


@READERS.register("json")
def read_json(text: str, ctx: ReadContext) -> Iterator[Item]:
    """A JSON list of records, or a dict of splits picked by ``path#key`` (CLINC150 layout)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _error(
            ctx.file,
            e.lineno,
            f"malformed JSON ({e.msg} at column {e.colno})",
            "fix the JSON syntax",
        ) from None
    start = _WS.match(text, 0).end()
    if isinstance(data, dict):
        keys = ", ".join(map(repr, data)) or "none"
        if ctx.key is None:
            raise _error(
                ctx.file,
                None,
                f"the file holds a dict of splits (keys: {keys})",
                f"pick one by appending '#key' to the path, e.g. {ctx.file}#{next(iter(data), 'train')}",
            )
        if ctx.key not in data:
            raise _error(
                ctx.file,
                None,
                f"no split {ctx.key!r} in the file (keys: {keys})",
                "use one of these keys after '#'",
            )
        data, start = data[ctx.key], _value_offset(text, ctx.key)
        where = f"{ctx.file}#{ctx.key}"
    else:
        _no_key("a JSON list", ctx)
        where = ctx.file
    if not isinstance(data, list):
        raise _error(
            where,
            None,
            f"expected a JSON list of records, got a {type(data).__name__}",
            "store the split as a list: [record, record, ...]",
        )
    line, last = 1, 0
    for offset, value in _array_items(text, start):
        line += text.count("\n", last, offset)
        last = offset
        yield _from_record(value, line, ctx)
