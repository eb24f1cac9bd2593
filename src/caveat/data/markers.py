"""The canonical marked form of a relation example: ``The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>.``

Every relation reader turns its records into this form (SemEval-2010 Task 8 files are in it already; records
with character offsets are marked here), and the model reads the hidden states at the ``<e1>`` and ``<e2>``
start markers (Baldini Soares et al. 2019, "Matching the Blanks: Distributional Similarity for Relation
Learning"; Zhou & Chen 2022, "An Improved Baseline for Sentence-level Relation Extraction"). Pure string
functions: no tokenizer here.
"""

from __future__ import annotations

from typing import Any

E1, E1_END, E2, E2_END = "<e1>", "</e1>", "<e2>", "</e2>"
MARKERS = (E1, E1_END, E2, E2_END)


def marker_problem(text: str) -> str | None:
    """Why ``text`` is not in the marked form (each marker exactly once, each entity non-empty, the two
    entities disjoint), or None when it is."""
    for marker in MARKERS:
        count = text.count(marker)
        if count != 1:
            return f"the text has {count} {marker!r} markers, and a relation example needs exactly one"
    spans = {}
    for start, end in ((E1, E1_END), (E2, E2_END)):
        begin, stop = text.index(start), text.index(end)
        if stop < begin:
            return f"{end!r} comes before {start!r}"
        if not text[begin + len(start) : stop].strip():
            return f"the entity {start}…{end} is empty"
        spans[start] = (begin, stop + len(end))
    (a0, a1), (b0, b1) = spans[E1], spans[E2]
    if a0 < b1 and b0 < a1:
        return "the entities <e1>…</e1> and <e2>…</e2> overlap"
    return None


def parse_span(value: Any) -> tuple[int, int] | None:
    """``[start, end]`` or ``{"start": s, "end": e}`` (integers, end exclusive) as a pair; None when malformed."""
    if isinstance(value, dict) and set(value) >= {"start", "end"}:
        value = [value["start"], value["end"]]
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return int(value[0]), int(value[1])
    return None


def span_problem(text: str, head: tuple[int, int], tail: tuple[int, int]) -> str | None:
    """Why character spans ``head`` / ``tail`` (end exclusive) cannot be marked in ``text``, or None."""
    for name, (start, end) in (("head", head), ("tail", tail)):
        if not 0 <= start < end <= len(text):
            return f"the {name} span [{start}, {end}] is outside the text (length {len(text)}) or empty"
    if head[0] < tail[1] and tail[0] < head[1]:
        return f"the head span {list(head)} and the tail span {list(tail)} overlap"
    if any(marker in text for marker in MARKERS):
        return "the text already holds entity markers, and spans are given too"
    return None


def mark(text: str, head: tuple[int, int], tail: tuple[int, int]) -> str:
    """``text`` with ``<e1>`` around ``head`` and ``<e2>`` around ``tail`` (checked spans, end exclusive)."""
    # at one offset an entity's end goes before the other's start (adjacent entities)
    points = [(head[0], E1), (head[1], E1_END), (tail[0], E2), (tail[1], E2_END)]
    inserts = sorted(points, key=lambda p: (p[0], p[1] in (E1, E2)))
    out, last = [], 0
    for at, marker in inserts:
        out += [text[last:at], marker]
        last = at
    return "".join(out) + text[last:]
