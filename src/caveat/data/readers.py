"""Read one data split from a file into ``TextExample`` / ``TokenExample`` records.

Every reader takes the decoded file text and a ``ReadContext`` and yields either an
example or a ``DataError`` for a bad record, so that ``read_split`` alone decides
whether a bad record stops the run or is skipped and counted (``skip_invalid``).
Problems with the file as a whole (missing, not UTF-8, wrong header) always raise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caveat.errors import ConfigError, DataError
from caveat.registry import Registry
from caveat.types import Split, Task, TextExample, TokenExample

logger = logging.getLogger(__name__)

__all__ = ["READERS", "ReadContext", "iob1_to_bio2", "read_split", "read_texts"]


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
    labelled: bool = True


Item = TextExample | TokenExample | DataError
Reader = Callable[[str, ReadContext], Iterator[Item]]

READERS: Registry[Reader] = Registry("data format")

_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
_TAG = re.compile(r"^(?:O|[BI]-\S+)$")
# Only ASCII blanks separate CoNLL columns: str.split() would also split on U+00A0 and
# U+0085, which occur inside real tokens.
_COLUMNS = re.compile(r"[ \t]+")


def _error(file: str, line: int | None, problem: str, fix: str) -> DataError:
    where = f"{file}:{line}" if line is not None else file
    return DataError(f"{where}: {problem}. Fix: {fix}")


def _lines(text: str) -> list[str]:
    """Split on "\\n" only (never ``splitlines``: U+0085 / U+2028 occur inside real texts)."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _decode(path: Path, file: str) -> str:
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


def _split_key(path: str | Path) -> tuple[Path, str | None]:
    """``data.json#train`` -> (data.json, "train"); a real file whose name has '#' wins."""
    text = str(path)
    if "#" not in text or Path(text).exists():
        return Path(text), None
    base, _, key = text.rpartition("#")
    return Path(base), key


def _auto_format(path: Path, task: Task) -> str:
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if task is Task.TOKEN_CLASSIFICATION:
        return "conll"
    raise _error(
        str(path),
        None,
        f"cannot tell the data format from the extension {path.suffix or '(none)'!r}",
        f"set `data.format` to one of: {', '.join(READERS.names())}",
    )


# --- record checks shared by the readers -------------------------------------------


def _label(value: Any, line: int, ctx: ReadContext, what: str = "label") -> str | DataError:
    # Integers are accepted so that {"label": 1} and a "1 text" line mean the same label.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return _error(
            ctx.file, line, f"{what} must be a string, got {value!r}", f"write the {what} as text"
        )
    if not value.strip():
        return _error(ctx.file, line, f"empty {what}", f"give every example a {what}")
    return value


def _text(value: Any, line: int, ctx: ReadContext) -> str | DataError:
    if not isinstance(value, str):
        return _error(
            ctx.file, line, f"text must be a string, got {value!r}", "write the text as a string"
        )
    if not value.strip():
        return _error(ctx.file, line, "empty text", "remove the line or give it a text")
    return value


def _text_example(text: Any, label: Any, line: int, ctx: ReadContext) -> Item:
    checked = _text(text, line, ctx)
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
    return _text_example(value[ctx.text_field], value.get(ctx.label_field), line, ctx)


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


def _only_text(fmt: str, ctx: ReadContext) -> None:
    if ctx.task is not Task.TEXT_CLASSIFICATION:
        raise _error(
            ctx.file,
            None,
            f"the {fmt} format holds text classification data, not {ctx.task.value}",
            "use jsonl, json or conll for token classification",
        )


def _no_key(fmt: str, ctx: ReadContext) -> None:
    if ctx.key is not None:
        raise _error(
            ctx.file,
            None,
            f"'#{ctx.key}' selects a split of a JSON file, but {fmt} files hold one split",
            "remove the '#...' suffix from the path",
        )


# --- readers --------------------------------------------------------------------------


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


_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


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
                "pick one by appending '#key' to the path, "
                f"e.g. {ctx.file}#{next(iter(data), 'train')}",
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
                option = "text_field" if field == ctx.text_field else "label_field"
                raise _error(
                    ctx.file,
                    1,
                    f"the header has no column {field!r} (columns: {', '.join(map(repr, header))})",
                    f"name the column with --set data.{option}=<column>, "
                    f"e.g. --set data.{option}={header[0] if header else 'text'}",
                )
        text_at = header.index(ctx.text_field)
        label_at = header.index(ctx.label_field) if ctx.label_field in header else None
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
            yield _text_example(row[text_at], label, line, ctx)
    except csv.Error as e:
        raise _error(
            ctx.file, rows.line_num, f"unreadable {fmt} ({e})", f"fix the {fmt} quoting"
        ) from None


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


@READERS.register("conll")
def read_conll(text: str, ctx: ReadContext) -> Iterator[Item]:
    """Columns per token (first = token, last = tag), blank lines between sentences.

    Works for 2 columns (WNUT) and 4 columns (CoNLL-2003); ``-DOCSTART-`` lines are
    skipped and IOB1 tags are converted to BIO2.
    """
    _no_key("conll", ctx)
    if ctx.task is not Task.TOKEN_CLASSIFICATION:
        raise _error(
            ctx.file,
            None,
            "the conll format holds token classification data",
            "set the task to token-classification, or set `data.format` for text data",
        )
    sentence: list[tuple[int, list[str]]] = []
    for number, line in enumerate([*_lines(text), ""], start=1):
        columns = _COLUMNS.split(line.strip(" \t")) if line.strip(" \t") else []
        if columns and columns[0] == "-DOCSTART-":
            continue
        if columns:
            sentence.append((number, columns))
            continue
        if sentence:
            yield _conll_sentence(sentence, ctx)
            sentence = []


def _conll_sentence(rows: list[tuple[int, list[str]]], ctx: ReadContext) -> Item:
    first = rows[0][0]
    tokens = [columns[0] for _, columns in rows]
    if not ctx.labelled and any(len(columns) == 1 for _, columns in rows):
        return TokenExample(tuple(tokens), None, first)
    for number, columns in rows:
        if len(columns) == 1:
            return _error(
                ctx.file,
                number,
                f"one column ({columns[0]!r}): no tag",
                "write `token tag` (columns separated by spaces or tabs)",
            )
        bad = _check_tags([columns[-1]], number, ctx)
        if bad:
            return bad
    return TokenExample(tuple(tokens), tuple(iob1_to_bio2([c[-1] for _, c in rows])), first)


# --- public API -----------------------------------------------------------------------


def iob1_to_bio2(tags: list[str]) -> list[str]:
    """Convert IOB1 tags to BIO2: an ``I-X`` that does not continue an ``X`` becomes ``B-X``.

    Idempotent on valid BIO2, so it is safe to apply to every file.

    Parameters
    ----------
    tags : list of str, length L
        Valid tags (``O``, ``B-X``, ``I-X``) of one sentence.

    Returns
    -------
    list of str, length L

    Examples
    --------
    >>> iob1_to_bio2(["I-ORG", "O", "I-MISC", "I-MISC", "B-MISC"])
    ['B-ORG', 'O', 'B-MISC', 'I-MISC', 'B-MISC']
    """
    out: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def read_split(
    path: str | Path,
    *,
    name: str,
    task: Task | str,
    fmt: str = "auto",
    text_field: str = "text",
    label_field: str = "label",
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    skip_invalid: bool = False,
    max_examples: int | None = None,
    labelled: bool = True,
) -> Split:
    """Read one split of text or token classification data.

    Parameters
    ----------
    path : str or Path
        The file; ``file.json#key`` picks one split of a JSON dict of splits.
    name : str
        The split's name (``train``, ``validation``, ...).
    task : Task or str
        ``text-classification`` gives ``TextExample``; ``token-classification`` gives
        ``TokenExample`` with BIO2 tags.
    fmt : str
        One of ``READERS.names()``, or ``auto`` to choose by extension (``.jsonl``,
        ``.json``, ``.csv``, ``.tsv``; any other is ``conll`` for token classification).
    text_field, label_field, tokens_field, tags_field : str
        Field (JSON) or column (CSV/TSV) names.
    skip_invalid : bool
        Skip bad records and count them in ``Split.skipped`` instead of raising.
    max_examples : int, optional
        Keep only the first N examples.
    labelled : bool
        When False, the label / tags may be absent (then ``None``).

    Returns
    -------
    Split
        ``source`` is the path as given (with ``#key``).

    Raises
    ------
    DataError
        ``file:line: problem. Fix: ...`` for a missing or undecodable file, a bad record
        (unless ``skip_invalid``) or a file without examples.
    """
    try:
        task = Task(task)
    except ValueError:
        choices = ", ".join(t.value for t in Task)
        raise ConfigError(f"unknown task {task!r}; choose one of: {choices}") from None
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples={max_examples} must be at least 1 (or None for all)")
    file, key = _split_key(path)
    source = str(path)
    text = _decode(file, str(file))
    if fmt == "auto":
        fmt = _auto_format(file, task)
    reader = READERS.get(fmt)
    ctx = ReadContext(
        file=str(file),
        task=task,
        key=key,
        text_field=text_field,
        label_field=label_field,
        tokens_field=tokens_field,
        tags_field=tags_field,
        labelled=labelled,
    )
    examples: list[TextExample | TokenExample] = []
    skipped, first_problem = 0, None
    items = reader(text, ctx)
    for item in items:
        if isinstance(item, DataError):
            if not skip_invalid:
                raise item
            skipped += 1
            first_problem = first_problem or str(item)
            continue
        examples.append(item)
        if max_examples is not None and len(examples) >= max_examples:
            break
    if skipped:
        logger.warning("%s: skipped %d invalid records (first: %s)", source, skipped, first_problem)
    if not examples:
        more = f" ({skipped} invalid records skipped; first: {first_problem})" if skipped else ""
        raise _error(source, None, f"no examples{more}", f"check that the file is {fmt} data")
    return Split(name=name, examples=examples, source=source, skipped=skipped)


def read_texts(path: str | Path) -> list[str]:
    """Texts to predict on: a ``.jsonl`` file (field ``text``) or one text per non-empty line.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of str, length N

    Raises
    ------
    DataError
        Missing or undecodable file, malformed JSON line, missing ``text`` or no texts.
    """
    file = Path(path)
    lines = _lines(_decode(file, str(path)))
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if file.suffix.lower() != ".jsonl":
            texts.append(line)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise _error(
                str(path),
                number,
                f"malformed JSON ({e.msg} at column {e.colno})",
                'write one object per line: {"text": "..."}',
            ) from None
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            present = ", ".join(map(repr, value)) if isinstance(value, dict) else "none"
            raise _error(
                str(path),
                number,
                f"no string field 'text' (fields present: {present})",
                'write one object per line: {"text": "..."}',
            )
        texts.append(value["text"])
    if not texts:
        raise _error(str(path), None, "no texts", "write one text per line")
    return texts
