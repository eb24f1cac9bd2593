"""Read back the texts of an input log written by ``caveat serve --log-inputs PATH``.

The log holds one JSON object per line with a string ``text`` (and the label, score and decision the
service gave it). Rotation keeps older lines in ``PATH.1`` (newest) .. ``PATH.N``; a reader is given
each file it wants, so which traffic is read stays the caller's choice.
"""

from __future__ import annotations

import json
from pathlib import Path

from caveat.data.readers._common import _decode, _error, _lines

FIX = 'read a file written by caveat serve --log-inputs (one {"text": ...} object per line)'


def read_logged_texts(path: str | Path) -> list[str]:
    """The texts of one input-log file, in the order they were served.

    Parameters
    ----------
    path : str or Path
        ``PATH`` or one of its rotated files ``PATH.1``, ``PATH.2``, ...; only this file is read, even
        when rotated siblings exist.

    Returns
    -------
    list of str, length N (empty for an empty log: a log just rotated holds no line yet)

    Raises
    ------
    DataError
        Missing or undecodable file, or a line (named ``file:line``) that is empty, not JSON (e.g. cut
        short by a crash), or not an object with a string ``text``. No line is skipped.
    """
    lines = _lines(_decode(Path(path), str(path)))
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise _error(str(path), number, "empty line", FIX)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise _error(str(path), number, f"malformed JSON ({e.msg} at column {e.colno})", FIX) from None
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            present = ", ".join(map(repr, value)) if isinstance(value, dict) else type(value).__name__
            raise _error(str(path), number, f"no string field 'text' (present: {present})", FIX)
        texts.append(value["text"])
    return texts
