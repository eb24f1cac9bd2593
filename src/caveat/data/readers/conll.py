"""The CoNLL column format (WNUT, CoNLL-2003) and the IOB1 -> BIO2 tag conversion."""

from __future__ import annotations

import re
from collections.abc import Iterator

from caveat.data.readers._common import READERS, Item, ReadContext, _error, _lines, _no_key
from caveat.data.readers._records import _check_tags
from caveat.types import Task, TokenExample

# Only ASCII blanks separate CoNLL columns: str.split() would also split on U+00A0 and
# U+0085, which occur inside real tokens.
_COLUMNS = re.compile(r"[ \t]+")


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
    # The extra "" closes a last sentence that has no blank line after it.
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
