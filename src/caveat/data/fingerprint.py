"""A content hash of the data, to tell whether two runs trained and evaluated on the same data."""

from __future__ import annotations

import hashlib
import json

from caveat.data.splits import DataSplits
from caveat.types import TextExample, TokenExample

__all__ = ["fingerprint"]

# Bump when the hashed representation changes, so old and new fingerprints never collide.
_VERSION = "caveat-data-v1"


def fingerprint(splits: DataSplits) -> str:
    """SHA-256 (hex) of every split's role, examples and labels, in order.

    Only content counts: file names, formats, line numbers and skipped-line counts do not,
    so the same data as JSONL, CSV or CoNLL gives the same fingerprint, and changing,
    adding, removing or reordering one example changes it.

    Parameters
    ----------
    splits : DataSplits

    Returns
    -------
    str
        64 hex characters.
    """
    digest = hashlib.sha256(_VERSION.encode())
    for role, split in splits.items():
        digest.update(_line(["split", role, len(split)]))
        for ex in split.examples:
            if isinstance(ex, TokenExample):
                record = ["tokens", list(ex.tokens), None if ex.tags is None else list(ex.tags)]
            elif isinstance(ex, TextExample):
                record = ["text", ex.text, ex.label]
            else:
                raise TypeError(f"cannot fingerprint a {type(ex).__name__}; expected an example")
            digest.update(_line(record))
    return digest.hexdigest()


def _line(value: list) -> bytes:
    # One JSON document per line makes the encoding unambiguous (no concatenation clashes).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
