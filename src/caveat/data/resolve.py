"""Resolve what a user names against a run's data: a split name or a labelled file, an out-of-scope
set name or a file of texts. Every workflow over a run (evaluate, calibrate, report, attack, explain)
reads its data through these two functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from caveat.data.fingerprint import fingerprint
from caveat.data.labels import LabelMap, check_labels
from caveat.data.load import SPLIT_NAMES, find_split, load_data, read_file
from caveat.data.readers import read_texts
from caveat.data.readers.hf import is_hf
from caveat.errors import ConfigError, RunDirError
from caveat.models.rundir import Run
from caveat.types import Split


def _is_file(spec: str) -> bool:
    # An hf: source (a folder, a file or a Hub name) counts as a file; its reader says when it is missing.
    return is_hf(spec) or Path(spec.partition("#")[0]).expanduser().is_file()


def resolve_split(run: Run, data: str, load: Callable[[], object] | None = None) -> Split:
    """``data`` is a split name (train/validation/calibration/test, as the run was trained) or a file.
    ``load`` returns the run's splits (pass a cached one to read the data once)."""
    names = ", ".join(SPLIT_NAMES)
    if _is_file(data):
        split = read_file(data, run.config.data.model_copy(update={"root": None}), run.task, name=Path(data).name)
    elif data in run.config.data.ood:
        raise ConfigError(
            f"{{data}}={data!r} is an out-of-scope set, with no labels of this model to score; "
            f"choose one of {names} or a labelled file",
            fields=("data",),
        )
    elif data in SPLIT_NAMES:
        splits = load() if load is not None else load_data(run.config)
        split = find_split(splits, data)
        if split is None:
            raise ConfigError(
                f"{{data}}={data!r}: this run has no {data} split (set data.{data} when training, or pass a file)",
                fields=("data",),
            )
        if fingerprint(splits) != run.info.get("data", {}).get("fingerprint"):
            raise RunDirError(
                f"the data of {run.path} changed since training (fingerprint differs); pass the file "
                "to {data} instead of the split name",
                fields=("data",),
            )
    else:
        raise ConfigError(
            f"{{data}}={data!r} is neither a file nor a split name; use one of {names} or a path", fields=("data",)
        )
    check_labels(split, LabelMap(run.labels), run.task)
    return split


def ood_texts(run: Run, spec: str, load: Callable[[], object] | None = None) -> list[str]:
    """Texts of an out-of-scope set: a name from the run's ``data.ood``, or a file (labels ignored).
    ``load`` returns the run's splits (pass a cached one to read the data once)."""
    if spec in run.config.data.ood:
        splits = load() if load is not None else load_data(run.config)
        return [ex.text for ex in splits.extra[spec].examples]
    if _is_file(spec):
        if is_hf(spec) or "#" in spec or spec.endswith((".json", ".csv", ".tsv")):
            split = read_file(
                spec, run.config.data.model_copy(update={"root": None}), run.task, name="ood", labelled=False
            )
            return [ex.text for ex in split.examples]
        return read_texts(spec)
    names = ", ".join(run.config.data.ood) or "none configured"
    raise ConfigError(
        f"{{ood}}={spec!r} is neither an out-of-scope set of this run ({names}) nor a file of texts", fields=("ood",)
    )
