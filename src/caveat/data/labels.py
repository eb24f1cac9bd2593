"""The mapping between label strings and class ids, fixed by the training data."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence

from caveat.errors import DataError
from caveat.types import Split, Task, TextExample, TokenExample

__all__ = ["LabelMap", "check_labels"]

_SHOWN = 10  # labels listed in a message; CLINC has 151


def _known(labels: Sequence[str]) -> str:
    shown = ", ".join(map(repr, labels[:_SHOWN]))
    more = f", ... ({len(labels) - _SHOWN} more)" if len(labels) > _SHOWN else ""
    return f"{shown}{more}"


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


class LabelMap:
    """Labels in a fixed order; a label's id is its index.

    Parameters
    ----------
    labels : sequence of str
        Distinct, non-empty label strings (for NER: the BIO2 tags).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        labels = list(labels)
        bad = [x for x in labels if not isinstance(x, str) or not x]
        if bad:
            raise DataError(f"labels must be non-empty strings, got {bad[0]!r}. Fix: name every label")
        duplicates = sorted(x for x, n in Counter(labels).items() if n > 1)
        if duplicates:
            raise DataError(f"duplicate labels {duplicates}. Fix: give each label once in the label list")
        if not labels:
            raise DataError("no labels. Fix: train on data that has labels")
        self.labels: list[str] = labels
        self._ids = {label: i for i, label in enumerate(labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"LabelMap({_known(self.labels)})"

    def to_id(self, label: str, *, where: str = "") -> int:
        """The id of ``label``.

        Parameters
        ----------
        label : str
        where : str
            Where the label was read (``file:line``), for the message.

        Raises
        ------
        DataError
            The label is unknown; the message lists up to 10 known labels.
        """
        try:
            return self._ids[label]
        except KeyError:
            prefix = f"{where}: " if where else ""
            raise DataError(
                f"{prefix}unknown label {label!r}; the {len(self)} known labels are "
                f"{_known(self.labels)}. Fix: use one of the known labels, or retrain with "
                f"data that has {label!r}"
            ) from None

    def from_id(self, i: int) -> str:
        """The label with id ``i`` (0 <= i < len(self))."""
        i = operator.index(i)  # numpy integers are fine, floats are not
        if not 0 <= i < len(self):
            raise IndexError(f"label id {i} is out of range: there are {len(self)} labels (0..{len(self) - 1})")
        return self.labels[i]

    def to_json(self) -> list[str]:
        """The labels in id order, for saving next to a model."""
        return list(self.labels)

    @classmethod
    def from_json(cls, data: list[str]) -> LabelMap:
        """Rebuild a map saved with ``to_json``."""
        if not isinstance(data, list):
            raise DataError(
                f"a label map is a JSON list of strings, got {type(data).__name__}. "
                "Fix: save it with LabelMap.to_json()"
            )
        return cls(data)

    @classmethod
    def from_splits(cls, splits: Split | Iterable[Split], task: Task | str) -> LabelMap:
        """The labels of the training data.

        Text labels are sorted. NER tags are ``O`` first, then ``B-T``, ``I-T`` for each
        entity type ``T`` in sorted order (both, even where only ``B-T`` occurs, so that
        a model can predict any valid BIO2 sequence).

        Parameters
        ----------
        splits : Split or iterable of Split
            Labelled splits (usually only ``train``).
        task : Task or str

        Raises
        ------
        DataError
            An example has no label, or there are no labels at all.
        """
        task = Task(task)
        splits = [splits] if isinstance(splits, Split) else list(splits)
        seen: set[str] = set()
        for split in splits:
            for ex in split.examples:
                values = ex.tags if isinstance(ex, TokenExample) else (ex.label,)
                if values is None or None in values:
                    raise DataError(
                        f"{_where(split.source, ex.line)}: the example has no label. Fix: label every training example"
                    )
                seen.update(values)
        if task.classifies_texts:
            return cls(sorted(seen))
        types = sorted({tag[2:] for tag in seen if tag != "O"})
        return cls(["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")])


def check_labels(split: Split, label_map: LabelMap, task: Task | str) -> None:
    """Check that every label (or tag) of ``split`` is in ``label_map``.

    Unlabelled examples (``None``) are allowed.

    Raises
    ------
    DataError
        Names ``source:line`` of the first unknown label and how many examples have one.
    """
    task = Task(task)
    unknown: list[tuple[int | None, str]] = []
    for ex in split.examples:
        expected = TextExample if task.classifies_texts else TokenExample
        if not isinstance(ex, expected):
            raise DataError(
                f"{_where(split.source, ex.line)}: split {split.name!r} holds "
                f"{type(ex).__name__}s, not data for {task.value}. Fix: read it with that task"
            )
        if isinstance(ex, TextExample):
            values: Iterable[str] = () if ex.label is None else (ex.label,)
        else:
            values = ex.tags or ()
        for value in values:
            if value not in label_map:
                unknown.append((ex.line, value))
                break
    if unknown:
        line, label = unknown[0]
        others = sorted({lab for _, lab in unknown})
        raise DataError(
            f"{_where(split.source, line)}: label {label!r} is not in the training data "
            f"({len(unknown)} examples of split {split.name!r} have labels the training data "
            f"lacks: {_known(others)}; known: {_known(label_map.labels)}). "
            f"Fix: remove those examples, or add examples of {label!r} to the training data"
        )
