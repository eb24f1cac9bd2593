"""Build the train / validation / calibration / test splits a config asks for."""

from __future__ import annotations

from pathlib import Path

from caveat.config import DataConfig, RunConfig
from caveat.data.readers import read_split
from caveat.data.readers.hf import is_hf, resolve_hf
from caveat.data.splits import make_splits
from caveat.errors import ConfigError
from caveat.types import Split, Task

SPLIT_NAMES = ("train", "validation", "calibration", "test")
# formats a file names by its extension; any other file a user names (caveat evaluate --data, --shift) is read
# with the run's data.format (e.g. label-sentence for SST-2 / CR)
SELF_DESCRIBING = (".jsonl", ".json", ".csv", ".tsv")


def format_for(spec: str, fmt: str) -> str:
    """The format to read ``spec`` with: ``auto`` (by extension) when its extension is in ``SELF_DESCRIBING``,
    else ``fmt`` (the run's ``data.format``), so that a CSV given to a run trained on label-sentence files is
    read as CSV."""
    return "auto" if Path(spec.partition("#")[0]).suffix.lower() in SELF_DESCRIBING else fmt


def resolve_path(spec: str, root: str | None) -> str:
    """Join a relative path (optionally ``file#key``) to ``data.root``; ``hf:`` Hub names stay as they are."""
    if is_hf(spec):
        return resolve_hf(spec, root)
    path, _, key = spec.partition("#")
    full = Path(path).expanduser()
    if not full.is_absolute() and root is not None:
        full = Path(root).expanduser() / full
    return f"{full}#{key}" if key else str(full)


def read_file(spec: str, data: DataConfig, task: Task, *, name: str, labelled: bool = True) -> Split:
    """Read one file as configured by ``data`` (format, fields, skip policy)."""

    return read_split(
        resolve_path(spec, data.root),
        name=name,
        task=task,
        fmt=data.format,
        text_field=data.text_field,
        label_field=data.label_field,
        tokens_field=data.tokens_field,
        tags_field=data.tags_field,
        head_field=data.head_field,
        tail_field=data.tail_field,
        skip_invalid=data.skip_invalid,
        max_examples=data.max_examples,
        labelled=labelled,
    )


def load_data(config: RunConfig):
    """Read the configured files and carve the missing splits (seeded). Returns ``DataSplits``.

    Out-of-scope sets (``data.ood``) are read into ``extra`` as they are: their labels (e.g. ``oos``)
    are not classes of the model.
    """

    data, task = config.data, config.task
    if data.train is None:
        raise ConfigError(
            "data.train is not set; give a training file, e.g. --set data.train=train.jsonl (or --train on the command "
            "line)"
        )
    read = {name: read_file(getattr(data, name), data, task, name=name) for name in SPLIT_NAMES if getattr(data, name)}
    splits = make_splits(
        read["train"],
        read.get("validation"),
        read.get("calibration"),
        read.get("test"),
        seed=split_seed(config),
        validation_fraction=data.validation_fraction,
        calibration_fraction=data.calibration_fraction,
        test_fraction=data.test_fraction,
        stratify=task.classifies_texts,
        train_fraction=data.train_fraction,
    )
    for name, spec in data.ood.items():
        splits.extra[name] = read_file(spec, data, task, name=name, labelled=False)
    return splits


def split_seed(config: RunConfig) -> int:
    """The seed the run's missing splits are carved with (``data.split_seed``, else the run's seed)."""
    return config.seed if config.data.split_seed is None else config.data.split_seed


def carves(config: RunConfig) -> bool:
    """Whether any split of the run is carved (so it depends on :func:`split_seed`), not read from a file."""
    data = config.data
    return (
        data.validation is None
        or data.calibration is None
        or data.train_fraction < 1
        or (data.test is None and data.test_fraction > 0)
    )


def find_split(splits, name: str) -> Split | None:
    """The split called ``name`` (one of the four, or an ``ood`` name), or None."""
    if name in SPLIT_NAMES:
        return getattr(splits, name)
    return splits.extra.get(name)
