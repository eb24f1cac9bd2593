"""Read one data split from a file into ``TextExample`` / ``TokenExample`` records.

Every reader takes the decoded file text and a ``ReadContext`` and yields either an
example or a ``DataError`` for a bad record, so that ``read_split`` alone decides
whether a bad record stops the run or is skipped and counted (``skip_invalid``).
Problems with the file as a whole (missing, not UTF-8, wrong header) always raise.

One module per concern: ``_common`` (context, registry, errors, decoding),
``_records`` (field checks), ``json_formats``, ``delimited``, ``conll`` and ``hf`` (``hf:`` sources
read with Hugging Face ``datasets``, which are not text files and so not in ``READERS``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

# Importing the format modules registers their readers in READERS.
from caveat.data.readers import conll, delimited, json_formats, semeval  # noqa: F401
from caveat.data.readers._common import READERS, ReadContext, _decode, _error, _lines
from caveat.data.readers.conll import iob1_to_bio2
from caveat.data.readers.hf import is_hf, read_hf
from caveat.data.readers.semeval import looks_like_semeval
from caveat.errors import ConfigError, DataError
from caveat.types import Split, Task, TextExample, TokenExample

logger = logging.getLogger(__name__)

__all__ = ["READERS", "ReadContext", "iob1_to_bio2", "read_split", "read_texts"]

_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


def _split_key(path: str | Path) -> tuple[Path, str | None]:
    """``data.json#train`` -> (data.json, "train"); a real file whose name has '#' wins."""
    text = str(path)
    if "#" not in text or Path(text).exists():
        return Path(text), None
    base, _, key = text.rpartition("#")
    return Path(base), key


def _auto_format(path: Path, task: Task, text: str = "") -> str:
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if task is Task.TOKEN_CLASSIFICATION:
        return "conll"
    if task is Task.RELATION_CLASSIFICATION and looks_like_semeval(text):
        return "semeval"
    raise _error(
        str(path),
        None,
        f"cannot tell the data format from the extension {path.suffix or '(none)'!r}",
        f"set `data.format` to one of: {', '.join(READERS.names())}",
    )


def _checked_task(task: Task | str, max_examples: int | None) -> Task:
    """``task`` as a Task; fails on an unknown task or a ``max_examples`` below 1 before reading."""
    try:
        task = Task(task)
    except ValueError:
        choices = ", ".join(t.value for t in Task)
        raise ConfigError(f"unknown task {task!r}; choose one of: {choices}") from None
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples={max_examples} must be at least 1 (or None for all)")
    return task


def _collect_examples(
    items: Iterable[TextExample | TokenExample | DataError], skip_invalid: bool, max_examples: int | None
) -> tuple[list[TextExample | TokenExample], int, str | None]:
    """(examples, skipped, first problem): the one place that raises or skips a bad record."""
    examples: list[TextExample | TokenExample] = []
    skipped, first_problem = 0, None
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
    return examples, skipped, first_problem


def _check_examples(source: str, fmt: str, examples: list, skipped: int, first_problem: str | None) -> None:
    """Warn about skipped records, and fail when the file gave no example at all."""
    if skipped:
        logger.warning("%s: skipped %d invalid records (first: %s)", source, skipped, first_problem)
    if not examples:
        more = f" ({skipped} invalid records skipped; first: {first_problem})" if skipped else ""
        raise _error(source, None, f"no examples{more}", f"check that the file is {fmt} data")


def _items(path: str | Path, task: Task, fmt: str, labelled: bool, fields: dict[str, str]) -> tuple[Iterable, str]:
    """(the reader's items, the format's name): an ``hf:`` source whatever ``fmt`` says, else the file's text."""
    if is_hf(path):
        return read_hf(
            str(path), ReadContext(file=str(path), task=task, labelled=labelled, **fields)
        ), "Hugging Face datasets"
    file, key = _split_key(path)
    text = _decode(file, str(file))
    fmt = _auto_format(file, task, text) if fmt == "auto" else fmt
    ctx = ReadContext(file=str(file), task=task, key=key, labelled=labelled, **fields)
    return READERS.get(fmt)(text, ctx), fmt


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
    head_field: str = "head",
    tail_field: str = "tail",
    skip_invalid: bool = False,
    max_examples: int | None = None,
    labelled: bool = True,
) -> Split:
    """Read one split of text or token classification data.

    Parameters
    ----------
    path : str or Path
        The file; ``file.json#key`` picks one split of a JSON dict of splits; ``hf:...`` reads
        with ``datasets`` (a ``save_to_disk`` folder, ``.parquet``, ``.arrow`` or a Hub name; see
        ``caveat.data.readers.hf``) whatever ``fmt`` says.
    name : str
        The split's name (``train``, ``validation``, ...).
    task : Task or str
        ``text-classification`` gives ``TextExample``; ``token-classification`` gives
        ``TokenExample`` with BIO2 tags; ``relation-classification`` gives ``TextExample`` whose text is
        in the marked form ``<e1>…</e1> … <e2>…</e2>`` (``caveat.data.markers``).
    fmt : str
        One of ``READERS.names()``, or ``auto`` to choose by extension (``.jsonl``,
        ``.json``, ``.csv``, ``.tsv``; any other is ``conll`` for token classification, and ``semeval``
        for relation classification when the file starts with ``ID<TAB>"sentence"``).
    text_field, label_field, tokens_field, tags_field : str
        Field (JSON) or column (CSV/TSV) names.
    head_field, tail_field : str
        Relation classification: fields holding the two entities' character spans (``[start, end]`` or
        ``{"start": s, "end": e}``, end exclusive) in an unmarked text; records without them carry markers.
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
    task = _checked_task(task, max_examples)
    source = str(path)
    fields = dict(
        text_field=text_field,
        label_field=label_field,
        tokens_field=tokens_field,
        tags_field=tags_field,
        head_field=head_field,
        tail_field=tail_field,
    )
    items, fmt = _items(path, task, fmt, labelled, fields)
    examples, skipped, first_problem = _collect_examples(items, skip_invalid, max_examples)
    _check_examples(source, fmt, examples, skipped, first_problem)
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
