"""The SemEval-2010 Task 8 format (Hendrickx et al. 2010, "SemEval-2010 Task 8: Multi-Way Classification of
Semantic Relations between Pairs of Nominals"): blocks of ``ID<TAB>"marked sentence"``, the relation
(``Component-Whole(e2,e1)`` or ``Other``), an optional ``Comment: ...`` line and a blank line.

The sentences are already in the marked form of ``caveat.data.markers``. A file without relation lines (the
unlabelled test file) reads with ``labelled=False``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from caveat.data.readers._common import READERS, Item, ReadContext, _error, _lines, _no_key
from caveat.data.readers._records import _text_example
from caveat.types import Task

SENTENCE = re.compile(r'^\s*(\d+)\t"(.*)"\s*$')


def looks_like_semeval(text: str) -> bool:
    """Whether the first non-blank line is ``ID<TAB>"sentence"`` (how ``format=auto`` recognises the format)."""
    first = next((line for line in _lines(text[:4096]) if line.strip()), "")
    return SENTENCE.match(first) is not None


@READERS.register("semeval")
def read_semeval(text: str, ctx: ReadContext) -> Iterator[Item]:
    """One relation example per block; see the module docstring."""
    _no_key("semeval", ctx)
    if ctx.task is not Task.RELATION_CLASSIFICATION:
        raise _error(
            ctx.file,
            None,
            f"the semeval format holds relation classification data, not {ctx.task.value}",
            "set task=relation-classification",
        )
    pending: tuple[int, str] | None = None  # (line, sentence) waiting for its relation line
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip() or line.startswith("Comment:"):
            continue
        found = SENTENCE.match(line)
        if found:
            if pending is not None:
                yield _unlabelled(pending, ctx)
            pending = (number, found.group(2))
            continue
        if pending is None:
            yield _error(
                ctx.file,
                number,
                f'expected a line ID<TAB>"sentence", got {line[:60]!r}',
                "start every block with the example's number, a tab and the quoted sentence",
            )
            continue
        yield _text_example(pending[1], line.strip(), pending[0], ctx)
        pending = None
    if pending is not None:
        yield _unlabelled(pending, ctx)


def _unlabelled(pending: tuple[int, str], ctx: ReadContext) -> Item:
    """A sentence without a relation line: an example without a label, or an error when labels are needed."""
    return _text_example(pending[1], None, pending[0], ctx)
