"""Resolve what a user names against a run's data: a split name or a labelled file, an out-of-scope
set name or a file of texts. Every workflow over a run (evaluate, calibrate, report, attack, explain)
reads its data through these two functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from caveat.data.fingerprint import fingerprint
from caveat.data.labels import LabelMap, check_labels
from caveat.data.load import SPLIT_NAMES, find_split, format_for, load_data, read_file
from caveat.data.readers import read_texts
from caveat.data.readers.hf import is_hf
from caveat.data.readers.logged import read_logged_texts
from caveat.errors import ConfigError, RunDirError
from caveat.models.rundir import Run
from caveat.types import Split, Task


def _is_file(spec: str) -> bool:
    # An hf: source (a folder, a file or a Hub name) counts as a file; its reader says when it is missing.
    return is_hf(spec) or Path(spec.partition("#")[0]).expanduser().is_file()


def resolve_split(run: Run, data: str, load: Callable[[], object] | None = None) -> Split:
    """``data`` is a split name (train/validation/calibration/test, as the run was trained) or a file; a file
    ending in .jsonl/.json/.csv/.tsv is read by its extension (as ``--shift`` reads it), any other with the run's
    ``data.format``. ``load`` returns the run's splits (pass a cached one to read the data once)."""
    names = ", ".join(SPLIT_NAMES)
    if _is_file(data):
        settings = run.config.data.model_copy(update={"root": None, "format": format_for(data, run.config.data.format)})
        split = read_file(data, settings, run.task, name=Path(data).name)
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


def default_split(run: Run) -> str:
    """The split to evaluate when none is named: ``test`` when the run has one, else ``validation`` (a run trained
    without a test file or ``data.test_fraction``)."""
    splits = run.info.get("data", {}).get("splits", {})
    return "validation" if "test" not in splits and "validation" in splits else "test"


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


def target_inputs(run: Run, spec: str) -> list[str] | list[list[str]]:
    """Unlabelled inputs of a target domain (``caveat calibrate RUN --target FILE``), labels ignored.

    Text runs: an input log written by ``caveat serve --log-inputs`` (or one of its rotated files), a
    .jsonl/.json/.csv/.tsv read with the run's text field, or a file of texts, one per line. NER runs: word lists,
    from an input log (texts split on whitespace) or from a file in the run's format (e.g. CoNLL)."""
    path = Path(spec.partition("#")[0]).expanduser()
    if not is_hf(spec) and not path.is_file():
        raise ConfigError(
            f"{{target}}={spec!r}: no such file; give unlabelled inputs of the new domain (texts one per line, a "
            ".jsonl/.csv with the run's text field, a file in the run's format, or a log written by caveat serve "
            "--log-inputs)",
            fields=("target",),
        )
    logged = not is_hf(spec) and _is_input_log(path)
    if run.task is Task.TOKEN_CLASSIFICATION:
        if logged:
            return [t.split() for t in read_logged_texts(path) if t.split()]
        settings = run.config.data.model_copy(update={"root": None})
        return [list(ex.tokens) for ex in read_file(spec, settings, run.task, name="target", labelled=False).examples]
    return read_logged_texts(path) if logged else ood_texts(run, spec)


def _is_input_log(path: Path) -> bool:
    """Whether the first line is an input-log record: a JSON object with a string ``text`` and a ``time``."""
    with path.open("rb") as f:
        first = f.readline(1 << 20).strip()
    try:
        value = json.loads(first)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("text"), str) and "time" in value
