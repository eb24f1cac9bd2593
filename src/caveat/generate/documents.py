"""Documents with reference summaries, for uncertainty of generated summaries: XSum-style JSONL.

XSum (Narayan, Cohen & Lapata 2018, "Don't Give Me the Details, Just the Summary! Topic-Aware
Convolutional Neural Networks for Extreme Summarization", EMNLP): BBC articles, each with a
one-sentence summary. One JSON object per line; which fields hold the document, the summary and the id
is configurable (``document``, ``summary`` and ``id`` by default, as XSum on the Hugging Face hub).
Paths resolve as for questions (:func:`caveat.generate.data.resolve_data_path`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from caveat.data.readers._common import _decode, _error, _lines
from caveat.errors import ConfigError, DataError
from caveat.generate.data import _parse_json, check_limit, check_unique, resolve_data_path, sample
from caveat.registry import Registry


@dataclass(frozen=True)
class Document:
    """One document and its reference summary.

    Attributes
    ----------
    id : str
        Unique within a file: the id field as a string (XSum's are integers), or ``line-<n>`` (1-based
        line number) for a record without one.
    document : str
        The text to summarise.
    summary : str
        The reference summary (non-blank).
    """

    id: str
    document: str
    summary: str


@dataclass(frozen=True)
class Fields:
    """Which field of a record holds what (the reader's options)."""

    document: str = "document"
    summary: str = "summary"
    id: str = "id"


DocumentReader = Callable[[str, str, Fields], list[Document]]
DOCUMENT_READERS: Registry[DocumentReader] = Registry("document reader")


def _missing(field: str, role: str, present: list[str], used: set[str], file: str, line: int) -> DataError:
    """The error for a record without ``field``: it lists the fields there and suggests one no other role uses."""
    option = f"{role}_field"
    example = next((f for f in present if f not in used), "<field>")
    return DataError(
        f"{file}:{line}: missing field {field!r} (fields present: {', '.join(map(repr, present)) or 'none'}). "
        f"Fix: name the field with {{{option}}}=<field>, e.g. {{{option}}}={example}",
        fields=(option,),
    )


@DOCUMENT_READERS.register("xsum")
def read_xsum(text: str, file: str, fields: Fields) -> list[Document]:
    """XSum-style JSONL: one ``{"document": str, "summary": str, "id": ...}`` object per line.

    Blank lines are skipped; lines split on ``\\n`` only (U+2028 occurs inside articles). A record without
    the document or summary field, or with a blank or non-string one, raises ``DataError`` naming the file,
    line, field and fix; the id field may be a string or an integer, or absent (``line-<n>``).
    """
    roles = {"document": fields.document, "summary": fields.summary}
    out: list[Document] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        rec = _parse_json(line, file, number)
        if not isinstance(rec, dict):
            raise _error(
                file,
                number,
                f"expected an object, got {type(rec).__name__}",
                f'write one {{"{fields.document}": ..., "{fields.summary}": ...}} object per line',
            )
        values = {}
        for role, field in roles.items():
            if field not in rec:
                raise _missing(field, role, list(rec), {fields.document, fields.summary, fields.id}, file, number)
            value = rec[field]
            if not isinstance(value, str) or not value.strip():
                raise _error(
                    file,
                    number,
                    f"field {field!r} must be a non-empty string; got "
                    + (f"{type(value).__name__} {str(value)[:40]!r}" if not isinstance(value, str) else "a blank one"),
                    f"give every record a {role} text, or remove the line",
                )
            values[role] = value
        raw_id = rec.get(fields.id)
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            raise _error(
                file, number, f"id field {fields.id!r} must be a string or an integer; got {raw_id!r}", "fix the id"
            )
        doc_id = str(raw_id) if raw_id is not None else f"line-{number}"
        out.append(Document(id=doc_id, document=values["document"], summary=values["summary"]))
    return out


def read_documents(
    path: str | Path,
    *,
    format: str = "xsum",
    document_field: str = "document",
    summary_field: str = "summary",
    id_field: str = "id",
    limit: int | None = None,
    seed: int | None = None,
) -> list[Document]:
    """Read documents with reference summaries.

    Parameters
    ----------
    path : str or Path
        The file; a relative path that does not exist is tried under ``$CAVEAT_DATA``.
    format : one of ``DOCUMENT_READERS.names()`` (``"xsum"``: JSONL).
    document_field, summary_field, id_field : the record fields that hold each; they must differ.
    limit, seed : at most ``limit`` documents, the first ones or, with ``seed``, a seeded uniform sample
        without replacement in file order (as :func:`caveat.generate.data.read_questions`).

    Returns
    -------
    list of Document, length ``min(limit, N)`` (or N), in file order.

    Raises
    ------
    DataError
        ``file[:line]: problem. Fix: ...`` for a missing, empty, non-UTF-8 or malformed file, a missing or
        blank field, or a repeated id.
    ConfigError
        An unknown format, fields that coincide, or a bad ``limit``.
    """
    check_limit(limit, "documents")
    fields = Fields(document=document_field, summary=summary_field, id=id_field)
    named = [("document_field", document_field), ("summary_field", summary_field), ("id_field", id_field)]
    for option, value in named:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{{{option}}} must name a field; got {value!r}", fields=(option,))
    if len({document_field, summary_field, id_field}) < 3:
        raise ConfigError(
            f"{{document_field}}={document_field!r}, {{summary_field}}={summary_field!r} and {{id_field}}="
            f"{id_field!r} must be three different fields",
            fields=("document_field", "summary_field", "id_field"),
        )
    reader = DOCUMENT_READERS.get(format)
    file = resolve_data_path(path)
    text = _decode(file, str(file))
    if not text.strip():
        raise _error(str(file), None, "file is empty", "give a file with at least one document")
    documents = reader(text, str(file), fields)
    check_unique(documents, str(file), "document")
    return sample(documents, limit, seed)
