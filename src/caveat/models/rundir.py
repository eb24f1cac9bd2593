"""The run directory: ``model/`` (HF format + ``head.safetensors``), ``caveat.json``, ``metrics.json``, ``logs/``.

Loading reads safetensors and JSON only; nothing is ever unpickled.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from caveat._version import __version__
from caveat.config import RunConfig
from caveat.errors import RunDirError
from caveat.io import atomic_dir, read_json, write_json_atomic
from caveat.models.backbone import load_backbone, prepare_tokenizer
from caveat.models.classifier import CaveatModel
from caveat.models.imported import IMPORTED, IMPORTED_COMPLETE, load_imported
from caveat.models.lora import check_base, load_lora, quiet_peft
from caveat.models.onnx import ARCHITECTURE as ONNX_ARCHITECTURE
from caveat.models.onnx import ONNX_FILE, load_onnx
from caveat.models.relations import marker_ids
from caveat.types import Task

RUN_FILE = "caveat.json"
MODEL_DIR = "model"
HEAD_FILE = "head.safetensors"
FORMAT_VERSION = 1
ARCHITECTURE = "caveat"  # caveat.json "architecture": how model/ is stored (see load_model)


def versions() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    return {
        "caveat": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


def save_model(run_dir: str | Path, model, tokenizer) -> None:
    """Write ``model/`` atomically: encoder via ``save_pretrained`` (safetensors; a LoRA backbone saves only its
    adapter), head, tokenizer."""
    from safetensors.torch import save_file

    with atomic_dir(Path(run_dir) / MODEL_DIR) as tmp:
        with quiet_peft():
            model.encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))


def write_run_info(
    run_dir: str | Path,
    *,
    config: RunConfig,
    labels: list[str],
    data: dict,
    training: dict | None = None,
    base: dict | None = None,
) -> dict:
    """Write ``caveat.json``: everything needed to use the model, in plain JSON. ``base`` identifies the frozen
    backbone a LoRA run's adapter belongs to (``models.lora.base_info``)."""
    info = {
        "format_version": FORMAT_VERSION,
        "task": config.task.value,
        "labels": labels,
        "config": config.model_dump(mode="json"),
        "data": data,
        "training": training or {},
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if base is not None:
        info["base"] = base
    write_json_atomic(Path(run_dir) / RUN_FILE, info)
    return info


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    info: dict
    config: RunConfig
    labels: list[str]

    @property
    def task(self) -> Task:
        return Task(self.info["task"])


def open_run(run_dir: str | Path) -> Run:
    """Read ``caveat.json`` of a run; errors say what is missing and how to make it."""
    path = Path(run_dir)
    if not (path / RUN_FILE).is_file():
        raise RunDirError(_not_a_run(path))
    info = read_json(path / RUN_FILE)
    if info.get("format_version") != FORMAT_VERSION:
        raise RunDirError(
            f"{path}/{RUN_FILE} has format_version {info.get('format_version')!r}; this caveat reads {FORMAT_VERSION}: "
            "retrain the run"
        )
    architecture = info.get("architecture", ARCHITECTURE)
    if architecture not in COMPLETE_FILE:
        raise RunDirError(
            f"{path}/{RUN_FILE} names architecture {architecture!r}, which this caveat cannot load; it loads "
            f"{', '.join(sorted(COMPLETE_FILE))}: upgrade caveat or retrain the run"
        )
    if not (path / MODEL_DIR / COMPLETE_FILE[architecture]).is_file():
        raise RunDirError(
            f"{path}/{MODEL_DIR} is incomplete (training did not finish?); resume with: caveat train ... --out {path} "
            "--resume"
        )
    return Run(path=path, info=info, config=RunConfig.model_validate(info["config"]), labels=list(info["labels"]))


def _not_a_run(path: Path) -> str:
    """Why ``path`` is not a run, and the fix: it does not exist (runs next to it are named), it is a file, or it
    is a folder (runs beneath it are named)."""
    if not path.exists():
        near = runs_under(path.parent, depth=1) if path.parent.is_dir() else []
        if near:
            return f"{str(path)!r} is not a caveat run: it does not exist; did you mean {_listed(near)}?"
        return (
            f"{str(path)!r} is not a caveat run: it does not exist; give the folder a run was written to "
            "(caveat train ... --out RUN)"
        )
    if path.is_file():
        hint = f"give its folder: {str(path.parent)!r}" if path.name == RUN_FILE else "give a run folder"
        return f"{str(path)!r} is not a caveat run: it is a file, and a run is a folder holding {RUN_FILE}; {hint}"
    runs = runs_under(path)
    if runs:
        return f"{str(path)!r} is not a caveat run but holds runs beneath it: did you mean {_listed(runs)}?"
    return (
        f"{str(path)!r} is not a caveat run (no {RUN_FILE}) and holds no run beneath it; give the folder a run "
        "was written to (caveat train ... --out RUN)"
    )


def runs_under(folder: Path, *, depth: int = 2) -> list[Path]:
    """Run folders (holding ``caveat.json``) below ``folder``, at most ``depth`` levels down, nearest first."""
    found: list[Path] = []
    level = [folder]
    for _ in range(depth):
        level = sorted(child for parent in level for child in _subfolders(parent))
        found += [child for child in level if (child / RUN_FILE).is_file()]
        level = [child for child in level if not (child / RUN_FILE).is_file()]  # a run's own folders hold no runs
    return found


def _listed(runs: list[Path], most: int = 5) -> str:
    more = f" (and {len(runs) - most} more)" if len(runs) > most else ""
    return " or ".join(str(r) for r in runs[:most]) + more


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")]
    except OSError:  # unreadable: nothing to suggest there
        return []


def load_model(run: Run):
    """``(tokenizer, model)`` from a run, in eval mode, on the CPU.

    ``caveat.json``'s ``architecture`` says how ``model/`` is stored (``open_run`` has checked it is known):
    ``"caveat"`` (absent in older runs) is a backbone saved with ``save_pretrained`` plus ``head.safetensors``.
    """
    return LOADERS[run.info.get("architecture", ARCHITECTURE)](run)


def _load_caveat(run: Run):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_dir = run.path / MODEL_DIR
    cfg = run.config.model
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model_dir), cfg.name_or_path, cfg.truncation_side)
    if cfg.peft.method == "lora":
        encoder = load_lora(load_lora_base(run), model_dir)
    else:
        encoder = AutoModel.from_pretrained(model_dir)
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
    entity_ids = marker_ids(tokenizer) if run.task is Task.RELATION_CLASSIFICATION else None
    model = CaveatModel(
        encoder,
        len(run.labels),
        task=run.task,
        pooling=cfg.pooling,
        head_dropout=cfg.head_dropout,
        entity_ids=entity_ids,
    )
    model.head.load_state_dict(load_file(str(model_dir / HEAD_FILE)))
    return tokenizer, model.eval()


def load_lora_base(run: Run):
    """The frozen backbone a LoRA run was trained on, after checking its weights are the same."""
    cfg = run.config.model
    base = run.info.get("base") or {"name_or_path": cfg.name_or_path}
    name = base["name_or_path"]
    check_base(base, name, run.path)
    return load_backbone(name, dropout=cfg.dropout)[1]


def load_members(run: Run, model, members: list[Run]) -> list[tuple]:
    """``(tokenizer or None, model)`` of each member of a LoRA run's ensemble. A member trained on the same base
    puts its adapter beside ``model``'s on the one base in memory and activates it before each forward (its
    tokenizer is the run's: None); any other member loads on its own."""
    from safetensors.torch import load_file

    model.adapter = model.adapter or model.encoder.active_adapter
    out = []
    for i, member in enumerate(members, start=1):
        if member.config.model.peft.method != "lora" or member.info.get("base") != run.info.get("base"):
            out.append(load_model(member))
            continue
        name = f"member{i}"
        encoder = load_lora(model.encoder, member.path / MODEL_DIR, adapter_name=name)
        cfg = member.config.model
        twin = CaveatModel(
            encoder,
            len(member.labels),
            task=member.task,
            pooling=cfg.pooling,
            head_dropout=cfg.head_dropout,
            adapter=name,
        )
        twin.head.load_state_dict(load_file(str(member.path / MODEL_DIR / HEAD_FILE)))
        out.append((None, twin.eval()))
    return out


# architecture -> the file in model/ written last (its presence means the model is complete), and its loader
COMPLETE_FILE = {ARCHITECTURE: HEAD_FILE}
LOADERS = {ARCHITECTURE: _load_caveat}
COMPLETE_FILE[ONNX_ARCHITECTURE], LOADERS[ONNX_ARCHITECTURE] = ONNX_FILE, load_onnx  # exported runs: models/onnx.py
COMPLETE_FILE[IMPORTED] = IMPORTED_COMPLETE  # caveat import: a transformers classifier as it is (models/imported.py)
LOADERS[IMPORTED] = lambda run: load_imported(run.path / MODEL_DIR, run.info)
