"""Reading, labelling, splitting and fingerprinting data sets."""

from __future__ import annotations

from caveat.data.fingerprint import fingerprint
from caveat.data.labels import LabelMap, check_labels
from caveat.data.readers import READERS, iob1_to_bio2, read_split, read_texts
from caveat.data.splits import DataSplits, make_splits

__all__ = [
    "READERS",
    "DataSplits",
    "LabelMap",
    "check_labels",
    "fingerprint",
    "iob1_to_bio2",
    "make_splits",
    "read_split",
    "read_texts",
]
