"""``hf:`` sources: data read with Hugging Face ``datasets`` instead of from a text file.

After the ``hf:`` prefix comes one of

- ``FOLDER`` or ``FOLDER#SPLIT``: a ``save_to_disk`` folder, holding a ``Dataset`` or a
  ``DatasetDict`` (then ``#SPLIT`` picks the split);
- ``FILE.parquet`` or ``FILE.arrow``: one split (``#SPLIT`` is an error there);
- ``NAME[:CONFIG]#SPLIT``: a data set on the Hub, read with
  ``datasets.load_dataset(NAME, CONFIG, split=SPLIT)``, e.g. ``hf:nyu-mll/glue:sst2#train``
  (Hub id ``nyu-mll/glue``, config ``sst2``). ``NAME`` is the Hub id (``owner/name`` or ``name``);
  the config name follows a colon. Without ``#SPLIT`` the error lists the splits.

A local path wins over a Hub name. ``datasets`` features are honoured: a ``ClassLabel`` column
gives label names, a list of ``ClassLabel`` gives tag names (``-1``, datasets' "no label", gives
``None``). Each row becomes a record for the JSON readers' record checks, so that messages and
``skip_invalid`` behave as for every other file; the "line" of an example is its 1-based row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from caveat.data.readers._common import Item, ReadContext, _error
from caveat.data.readers.json_formats import _from_record
from caveat.errors import ConfigError
from caveat.types import Task

__all__ = ["PREFIX", "is_hf", "read_hf", "resolve_hf"]

PREFIX = "hf:"
_FILES = (".parquet", ".arrow")
# A Hub id is `name` or `owner/name`, then an optional `:config`; anything else is a local path.
_HUB_NAME = re.compile(r"^[\w-][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")
_BATCH = 1000
# Column kinds each role accepts, best first (they suggest a column when the configured one is missing).
_WANTED = {
    "text_field": ("string", "large_string"),
    "label_field": ("ClassLabel", "string", "large_string", "int64", "int32", "int16", "int8"),
    "tokens_field": ("list of string", "list of large_string"),
    "tags_field": ("list of ClassLabel", "list of string", "list of large_string"),
}


def is_hf(spec: str | Path) -> bool:
    """Whether a data spec names an ``hf:`` source."""
    return str(spec).startswith(PREFIX)


def _parts(spec: str) -> tuple[str, str | None]:
    """``hf:TARGET#SPLIT`` -> (TARGET, SPLIT); a real path whose name has '#' wins."""
    rest = str(spec)[len(PREFIX) :]
    if "#" not in rest or Path(rest).expanduser().exists():
        return rest, None
    target, _, split = rest.rpartition("#")
    return target, split


def _is_hub_name(target: str) -> bool:
    return bool(_HUB_NAME.match(target)) and Path(target.partition(":")[0]).suffix.lower() not in _FILES


def resolve_hf(spec: str, root: str | None) -> str:
    """Join a relative local path after ``hf:`` to ``data.root``; a Hub name stays as it is.

    A relative path is a local one when it exists under ``root`` or cannot be a Hub id
    (``./x``, ``a/b/c``, ``x.parquet``); otherwise it is kept for ``load_dataset``.
    """
    target, split = _parts(spec)
    path = Path(target).expanduser()
    if root is not None and not path.is_absolute():
        joined = Path(root).expanduser() / path
        target = str(joined) if joined.exists() or not _is_hub_name(target) else target
    elif path.is_absolute() or not _is_hub_name(target):
        target = str(path)
    return f"{PREFIX}{target}" + (f"#{split}" if split is not None else "")


def _import_datasets() -> ModuleType:
    try:
        import datasets  # heavy and optional: imported only when an hf: source is read
    except ImportError:
        raise ConfigError(
            "reading hf: data needs the `datasets` package, which is not installed; "
            "install it with pip install 'caveat[hf]'"
        ) from None
    return datasets


def read_hf(spec: str, ctx: ReadContext) -> Iterator[Item]:
    """The examples of an ``hf:`` source (see the module docstring for the spellings).

    Parameters
    ----------
    spec : str
        ``hf:...`` as resolved by ``resolve_hf``; messages name it as it is.
    ctx : ReadContext
        The task and field names; ``ctx.file`` is the name used in messages.

    Returns
    -------
    Iterator of TextExample, TokenExample or DataError (a bad row), one per row.

    Raises
    ------
    ConfigError
        ``datasets`` is not installed.
    DataError
        A missing path, a missing or needless ``#split``, an unreachable Hub, a missing column
        (naming the columns and the ``--set data.<field>=`` fix).
    """
    datasets = _import_datasets()
    target, split = _parts(spec)
    data = _load(datasets, target, split, ctx.file)
    if data.num_rows == 0:
        raise _error(ctx.file, None, "the data set has no rows", "give a split with examples")
    columns = _check_columns(data, ctx)
    return _rows(data, columns, ctx)


def _load(datasets: ModuleType, target: str, split: str | None, source: str) -> Any:
    path = Path(target).expanduser()
    if path.is_dir():
        return _from_folder(datasets, path, split, source)
    if path.is_file():
        return _from_file(datasets, path, split, source)
    if _is_hub_name(target):
        return _from_hub(datasets, target, split, source)
    raise _error(
        source,
        None,
        "file or folder not found",
        f"check the path (relative paths are read from data.root, else from {Path.cwd()})",
    )


def _from_folder(datasets: ModuleType, path: Path, split: str | None, source: str) -> Any:
    if not (path / "dataset_dict.json").is_file() and not (path / "state.json").is_file():
        raise _error(
            source,
            None,
            "the folder is not a datasets save_to_disk folder (no dataset_dict.json or state.json)",
            "save the data with Dataset.save_to_disk or DatasetDict.save_to_disk, "
            "or point hf: at a .parquet or .arrow file",
        )
    return _pick_split(datasets.load_from_disk(str(path)), split, source)


def _from_file(datasets: ModuleType, path: Path, split: str | None, source: str) -> Any:
    import pyarrow as pa  # comes with datasets
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in _FILES:
        raise _error(
            source,
            None,
            f"hf: reads save_to_disk folders, .parquet and .arrow files, not {suffix or 'a file without extension'}",
            "drop the hf: prefix to read a jsonl, json, csv, tsv or CoNLL file",
        )
    if split is not None:
        raise _error(
            source,
            None,
            f"'#{split}' selects a split of a DatasetDict or a Hub data set, but a {suffix} file holds one split",
            "remove the '#...' suffix from the path",
        )
    try:
        if suffix == ".parquet":
            return datasets.Dataset(pq.read_table(path))
        try:
            return datasets.Dataset.from_file(str(path))  # the streaming format save_to_disk writes
        except pa.ArrowInvalid:
            with pa.memory_map(str(path)) as source_file:  # the random-access (feather v2) format
                return datasets.Dataset(pa.ipc.open_file(source_file).read_all())
    except (pa.ArrowException, OSError) as e:
        raise _error(source, None, f"not a readable {suffix} file ({e})", f"re-write it as {suffix}") from None


def _from_hub(datasets: ModuleType, target: str, split: str | None, source: str) -> Any:
    name, _, config = target.partition(":")
    example = f"hf:{name}{':' + config if config else ''}#{split or 'train'}"
    try:
        data = datasets.load_dataset(name, config or None, split=split)
    except ConnectionError as e:
        raise _error(
            source,
            None,
            f"there is no local file or folder {target!r} (relative paths are read from data.root, else from "
            f"{Path.cwd()}) and the Hugging Face Hub is unreachable ({e})",
            f"give the path of a save_to_disk folder or a .parquet/.arrow file, or read {example} once where the "
            "Hub is reachable (with HF_HUB_OFFLINE and HF_DATASETS_OFFLINE unset); it is cached after that",
        ) from None
    except (FileNotFoundError, ValueError) as e:  # DatasetNotFoundError; unknown config or split
        raise _error(
            source,
            None,
            f"no local file or folder {target!r}, and load_dataset({name!r}, {config or None!r}, split={split!r}) "
            f"failed: {e}",
            "check the path, or the Hub id, the config after ':' and the split after '#' "
            "(e.g. hf:nyu-mll/glue:sst2#train)",
        ) from None
    # With a split, load_dataset gives that Dataset; without, a DatasetDict (an error listing its splits).
    return data if split is not None else _pick_split(data, None, source)


def _pick_split(data: Any, split: str | None, source: str) -> Any:
    """The Dataset asked for: ``data`` itself, or its ``split`` when it is a DatasetDict (a dict)."""
    if isinstance(data, dict):
        names = ", ".join(map(repr, data)) or "none"
        if split is None:
            raise _error(
                source,
                None,
                f"the data set holds several splits ({names})",
                f"pick one by appending '#split' to the path, e.g. {source}#{next(iter(data), 'train')}",
            )
        if split not in data:
            raise _error(source, None, f"no split {split!r} (splits: {names})", "use one of these splits after '#'")
        return data[split]
    if split is not None:
        raise _error(
            source,
            None,
            f"'#{split}' selects a split of a DatasetDict, but the folder holds a single Dataset",
            "remove the '#...' suffix from the path",
        )
    return data


def _kind(feature: Any) -> str:
    """A column's type in words: ``string``, ``int64``, ``ClassLabel``, ``list of ClassLabel`` ..."""
    inner = getattr(feature, "feature", None)  # List / Sequence / LargeList
    if inner is not None:
        return f"list of {_kind(inner)}"
    if type(feature).__name__ == "ClassLabel":
        return "ClassLabel"
    return str(getattr(feature, "dtype", type(feature).__name__))


def _class_names(feature: Any) -> list[str] | None:
    """The names of a ``ClassLabel`` column or of a list of ``ClassLabel``; None for any other column."""
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if type(inner).__name__ == "ClassLabel" else None


def _suggest(kinds: dict[str, str], option: str, used: set[str]) -> str:
    """A column that fits the role ``option`` and no other role uses, best kind first."""
    wanted = _WANTED[option]
    candidates = [c for c in kinds if c not in used and kinds[c] in wanted]
    # CoNLL-2003 lists pos_tags and chunk_tags before ner_tags; entity tags are what NER trains on.
    candidates.sort(key=lambda c: (wanted.index(kinds[c]), option == "tags_field" and "ner" not in c.lower()))
    return candidates[0] if candidates else "<column>"


def _check_columns(data: Any, ctx: ReadContext) -> list[str]:
    """The columns to read, in role order; raises naming the columns and the fix when one is missing."""
    if ctx.task is Task.TOKEN_CLASSIFICATION:
        roles = [("tokens_field", ctx.tokens_field, True), ("tags_field", ctx.tags_field, ctx.labelled)]
    else:
        roles = [("text_field", ctx.text_field, True), ("label_field", ctx.label_field, ctx.labelled)]
    kinds = {column: _kind(data.features[column]) for column in data.column_names}
    for option, field, needed in roles:
        if needed and field not in kinds:
            used = {ctx.text_field, ctx.label_field, ctx.tokens_field, ctx.tags_field} - {field}
            columns = ", ".join(f"{c!r} ({k})" for c, k in kinds.items()) or "none"
            example = _suggest(kinds, option, used)
            raise _error(
                ctx.file,
                None,
                f"the data set has no column {field!r} (columns: {columns})",
                f"name the column with --set data.{option}=<column>, e.g. --set data.{option}={example}",
            )
    return [field for _, field, _ in roles if field in kinds]


def _decoded(value: Any, names: list[str] | None) -> Any:
    """ClassLabel integers as their names; -1 (datasets' "no label", e.g. GLUE test sets) as None."""
    if names is None:
        return value
    if isinstance(value, list):
        return [_decoded(v, names) for v in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else None


def _rows(data: Any, columns: list[str], ctx: ReadContext) -> Iterator[Item]:
    """One record per row, checked by the JSON readers' record checks (line = 1-based row)."""
    names = {column: _class_names(data.features[column]) for column in columns}
    row = 0
    for batch in data.select_columns(columns).iter(batch_size=_BATCH):
        for values in zip(*(batch[column] for column in columns)):
            row += 1
            record = {column: _decoded(value, names[column]) for column, value in zip(columns, values)}
            yield _from_record(record, row, ctx)
