"""``run_import``: a run directory from a Hugging Face classification checkpoint fine-tuned elsewhere
(``caveat import``, ``caveat.import_checkpoint``), so that calibrate, predict, evaluate, serve, report, attack and
explain work on it unchanged.

The checkpoint is stored as it is (``save_pretrained``, safetensors) with its tokenizer; ``caveat.json`` names the
architecture ``hf-classifier`` (loaded by ``models/imported.py``) and holds a ``RunConfig`` whose ``data`` keys say
where calibration and evaluation read their data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from caveat.config import RunConfig, load_config
from caveat.data.fingerprint import fingerprint
from caveat.data.load import load_data
from caveat.errors import ConfigError, DataError
from caveat.io import atomic_dir, read_json, write_json_atomic
from caveat.models.backbone import prepare_tokenizer
from caveat.models.encoding import encode_texts, encode_words
from caveat.models.imported import IMPORTED, ImportedClassifier, checkpoint_task, load_checkpoint, reproduces
from caveat.models.rundir import MODEL_DIR, RUN_FILE, write_run_info
from caveat.training.scoring import split_summary
from caveat.types import Task, TokenExample

GENERIC_LABEL = re.compile(r"LABEL_\d+")
CHECK_TEXTS = ["caveat checks that the imported model gives the logits transformers gives", "a short one"]
HELD_OUT_SHARE = 0.5  # without a train file: the share of the held-out file kept for the feature statistics


def run_import(
    folder: str | Path,
    out: str | Path,
    *,
    train: str | None = None,
    validation: str | None = None,
    calibration: str | None = None,
    test: str | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
    labels: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    force: bool = False,
) -> dict:
    """Write the run directory ``out`` from the checkpoint ``folder``; returns a summary (also under ``imported``
    in caveat.json).

    ``folder`` holds what ``save_pretrained`` wrote for an ``AutoModelForSequenceClassification`` (a
    text-classification run) or ``AutoModelForTokenClassification`` (token-classification), safetensors weights,
    and the tokenizer. Labels are ``config.id2label`` in id order unless ``labels`` names them. The data files
    (labelled, read as ``caveat train`` reads them) fill the run config's ``data`` keys, which ``caveat calibrate``
    and ``caveat evaluate`` read; ``train`` is the data the checkpoint was fine-tuned on, if you have it. Without it,
    the validation file (else the calibration file) takes the train role; see ``held_out_roles``. ``overrides``:
    ``--set``-style ``key=value`` pairs. ``out`` must be new or empty; ``force`` replaces a caveat run there.
    """
    folder, out = Path(folder).expanduser().resolve(), Path(out).expanduser()
    task, architecture = checkpoint_task(folder)
    _check_out(out, force)
    tokenizer, hf_model = load_checkpoint(folder, task)
    prepare_tokenizer(tokenizer, str(folder))
    names = label_names(hf_model.config, labels)
    files = {"train": train, "validation": validation, "calibration": calibration, "test": test}
    fields = {"text_field": text_field, "label_field": label_field}
    cfg = import_config(folder, task, hf_model.config, files, fields, overrides)
    data_info = _read_data(cfg, names)
    model = ImportedClassifier(hf_model, task=task)
    explicit = model.family is not None and _reproduces(model, tokenizer)
    if not explicit and not _reproduces(ImportedClassifier(hf_model, task=task, explicit=False), tokenizer):
        raise ConfigError(
            f"checkpoint folder {str(folder)!r}: caveat could not reproduce the logits of this {architecture}, so "
            "it cannot import it",
        )
    summary = {
        "run": str(out),
        "task": task.value,
        "from": str(folder),
        "architecture": architecture,
        "model_type": hf_model.config.model_type,
        "labels": names,
        "explicit": explicit,
        "data": data_info.get("splits", {}),
        "notes": _notes(task, names, explicit, labels is not None, cfg, given_train=bool(train) or _sets(overrides)),
    }
    _restore_dtype(hf_model, folder)
    _write_run(out, hf_model, tokenizer, cfg, names, data_info, summary)
    return summary


def _check_out(out: Path, force: bool) -> None:
    """``out`` is new or empty; with ``force``, a caveat run there is replaced (anything else is never removed)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{{out}}={str(out)!r} is a file; name a folder for the run", fields=("out",))
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(
            f"{{out}}={str(out)!r} exists and is not empty; choose another {{out}}, or replace the caveat run there "
            "with {force}",
            fields=("out", "force"),
        )
    if not (out / RUN_FILE).is_file():
        raise ConfigError(
            f"{{out}}={str(out)!r} is not a caveat run (no {RUN_FILE}), and {{force}} only replaces a caveat run; "
            "choose another {out}",
            fields=("out", "force"),
        )


def label_names(config, labels: Sequence[str] | None = None) -> list[str]:
    """Class names in id order: ``labels`` when given (they must count ``config.num_labels``), else
    ``config.id2label``; given names are written into the checkpoint's config too."""
    n = config.num_labels
    if isinstance(labels, str):
        labels = labels.split(",")
    if labels is None:
        names = [str(config.id2label[i]) for i in range(n)]
    else:
        names = [str(x).strip() for x in labels]
        if len(names) != n or not all(names) or len(set(names)) != n:
            raise ConfigError(
                f"{{labels}}={list(labels)!r}: give {n} distinct, non-empty class names in id order (the checkpoint "
                f"has {n} classes; its config.json says {[str(config.id2label[i]) for i in range(n)]})",
                fields=("labels",),
            )
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
    return names


def import_config(
    folder: Path, task: Task, hf_config, files: dict, fields: dict, overrides: Sequence[str] = ()
) -> RunConfig:
    """The run's ``RunConfig``: the task, the checkpoint folder, the data files (absolute paths, as ``caveat train``
    stores them) and ``train.max_length`` up to the model's positions (at most 512); ``overrides`` win."""
    data = {k: (v if "#" in str(v) else str(Path(v).expanduser().resolve())) for k, v in files.items() if v}
    data.update({k: v for k, v in fields.items() if v is not None})
    positions = getattr(hf_config, "max_position_embeddings", None) or 512
    extra = {
        "task": task.value,
        "data": data,
        "model": {"name_or_path": str(folder)},
        "train": {"max_length": max(8, min(512, positions))},
    }
    cfg = load_config(None, list(overrides), **extra)
    return held_out_roles(cfg, keep_fraction=_sets(overrides, "data.validation_fraction"))


def _sets(overrides: Sequence[str], key: str = "data.train") -> bool:
    """Whether a ``--set`` override names ``key``."""
    return any(o.partition("=")[0].strip() == key for o in overrides)


def held_out_roles(cfg: RunConfig, *, keep_fraction: bool = False) -> RunConfig:
    """Without a train file, a held-out file takes the train role, which calibration reads.

    Text classification fits its feature statistics (Mahalanobis OOD distance, last-layer Laplace) on train, apart
    from the calibration split: the validation file (else the calibration file) becomes train, and validation (and
    calibration, when not given) are carved from it, ``HELD_OUT_SHARE`` kept for train unless
    ``data.validation_fraction`` was set. Token classification calibrates on the calibration split alone, so the
    file becomes train and keeps its own role too.
    """
    data = cfg.data
    source = data.validation or data.calibration
    if data.train is not None or source is None:
        return cfg
    update = {"train": source}
    if cfg.task is Task.TEXT_CLASSIFICATION:
        update["validation" if data.validation else "calibration"] = None
        if not keep_fraction:
            update["validation_fraction"] = 1 - HELD_OUT_SHARE
    return cfg.model_copy(update={"data": data.model_copy(update=update)})


def _read_data(cfg: RunConfig, names: list[str]) -> dict:
    """Read the configured splits once: their labels must be the checkpoint's; ``{fingerprint, splits}`` as a
    trained run records them (empty without data)."""
    if cfg.data.train is None:
        return {}
    splits = load_data(cfg)
    known = set(names)
    for role, split in splits.items():
        if role in cfg.data.ood:
            continue
        unknown = sorted(_labels_of(split) - known)
        if unknown:
            raise DataError(
                f"the {role} data ({split.source}) has labels the checkpoint does not have: {unknown[:10]}; its "
                f"labels, in id order, are {names[:20]}. Name the checkpoint's classes with {{labels}} (in id order) "
                "or relabel the data",
                fields=("labels",),
            )
    return {"fingerprint": fingerprint(splits), "splits": split_summary(splits)}


def _labels_of(split) -> set[str]:
    """Every label (text) or tag (tokens) a split uses."""
    if split.examples and isinstance(split.examples[0], TokenExample):
        return {tag for ex in split.examples for tag in ex.tags or ()}
    return {ex.label for ex in split.examples if ex.label is not None}


def _reproduces(model: ImportedClassifier, tokenizer) -> bool:
    """Whether ``model`` gives transformers' own logits on two short inputs of different lengths."""
    if model.task is Task.TOKEN_CLASSIFICATION:
        rows = encode_words(tokenizer, [t.split() for t in CHECK_TEXTS], 64)
    else:
        rows = encode_texts(tokenizer, CHECK_TEXTS, 64)
    return reproduces(model, [r["input_ids"] for r in rows], tokenizer.pad_token_id or 0)


def _notes(
    task: Task, names: list[str], explicit: bool, named: bool, cfg: RunConfig, *, given_train: bool
) -> list[str]:
    """What the user should know about the imported run."""
    notes = []
    if cfg.data.train is not None and not given_train:
        if task is Task.TEXT_CLASSIFICATION:
            notes.append(
                f"no train file: {cfg.data.train} was split into train (the feature statistics of the OOD check and "
                "Laplace), validation and calibration; give the data the checkpoint was fine-tuned on as train to keep "
                "all of it for calibration"
            )
        else:
            notes.append(f"no train file: {cfg.data.train} stands in for it (NER calibration reads only calibration)")
    if not named and all(GENERIC_LABEL.fullmatch(n) for n in names):
        notes.append(
            f"the checkpoint's labels are generic ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}): they "
            "are kept, and data must use them; name the classes in id order with labels (caveat import --labels)"
        )
    if task is Task.TOKEN_CLASSIFICATION and not all(n == "O" or n[:2] in ("B-", "I-") for n in names):
        notes.append("the labels are not all BIO2 tags (O, B-X, I-X): spans are decoded from B-/I- tags only")
    if not explicit:
        notes.append(
            "this architecture runs as a whole (caveat does not reproduce its pooling from hidden states): efficient "
            "MC dropout (top layers only) is unavailable; naive MC dropout works"
        )
    if cfg.data.train is None:
        notes.append(
            "no labelled data: calibration and split names need it in the run config (data.*); predict, explain, "
            "serve and evaluation on a file work now"
        )
    return notes


def _restore_dtype(hf_model, folder: Path) -> None:
    """Store the weights in the checkpoint's own precision (the check ran in float32; the conversion back is exact)."""
    config = read_json(folder / "config.json")
    name = config.get("dtype") or config.get("torch_dtype")
    if name in ("float16", "bfloat16"):
        hf_model.to(getattr(torch, name))


def _write_run(out: Path, hf_model, tokenizer, cfg: RunConfig, names: list[str], data: dict, summary: dict) -> None:
    """The whole run directory at once (an old run under ``force`` is replaced only when the new one is complete)."""
    with atomic_dir(out) as tmp:
        hf_model.save_pretrained(tmp / MODEL_DIR)
        tokenizer.save_pretrained(tmp / MODEL_DIR)  # last: its tokenizer_config.json marks model/ complete
        info = write_run_info(tmp, config=cfg, labels=names, data=data)
        info.update({"architecture": IMPORTED, "imported": summary})
        write_json_atomic(tmp / RUN_FILE, info)
