"""Resumable checkpoints in safetensors + JSON (no pickle): weights, optimizer moments, scheduler,
RNG states and the loop's position."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from caveat.errors import RunDirError
from caveat.io import atomic_dir, read_json, write_json_atomic

CHECKPOINT_DIR = "checkpoint"


def _optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, slots in state["state"].items():
        meta["state"][str(idx)] = {}
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{name}"] = value.detach().cpu().contiguous()
                meta["state"][str(idx)][name] = "tensor"
            else:
                meta["state"][str(idx)][name] = value
    return tensors, meta


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for idx, slots in meta["state"].items():
        state[int(idx)] = {n: (tensors[f"optimizer.{idx}.{n}"] if v == "tensor" else v) for n, v in slots.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def _frozen(model) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _weights(model) -> dict[str, torch.Tensor]:
    """The state to checkpoint: everything but frozen parameters (a LoRA run's base is reloaded from the base model,
    so its checkpoint holds the adapters, the head and the buffers: megabytes, not the base's gigabytes)."""
    frozen = _frozen(model)
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def _load_weights(model, weights: dict[str, torch.Tensor], folder: Path) -> None:
    """Load what ``_weights`` saved: every key but the model's frozen parameters must be there."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    wrong = sorted(set(missing) - _frozen(model)) + sorted(unexpected)
    if wrong:
        raise RunDirError(
            f"{folder} does not fit this model ({len(wrong)} weights differ, e.g. {wrong[0]!r}): it was written by "
            "another configuration; resume with the run's own config or start without --resume"
        )


def save_checkpoint(run_dir: str | Path, *, model, optimizer, scheduler, trainer_state: dict) -> None:
    """Write ``run_dir/checkpoint`` atomically (the whole folder appears at once)."""
    opt_tensors, opt_meta = _optimizer_to_flat(optimizer.state_dict())
    np_state = np.random.get_state()
    with atomic_dir(Path(run_dir) / CHECKPOINT_DIR) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in _weights(model).items()}, str(tmp / "model.safetensors")
        )
        save_file(
            {
                **opt_tensors,
                "rng.torch": torch.get_rng_state(),
                "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
            },
            str(tmp / "state.safetensors"),
        )
        py_state = random.getstate()
        write_json_atomic(
            tmp / "state.json",
            {
                "trainer": trainer_state,
                "optimizer": opt_meta,
                "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
                "rng": {
                    "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
                    "python": [py_state[0], list(py_state[1]), py_state[2]],
                },
            },
        )


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_DIR / "state.json").is_file()


def load_checkpoint(run_dir: str | Path, *, model, optimizer, scheduler) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns the trainer state."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    meta = read_json(folder / "state.json")
    _load_weights(model, load_file(str(folder / "model.safetensors")), folder)
    tensors = load_file(str(folder / "state.safetensors"))
    optimizer.load_state_dict(_optimizer_from_flat(tensors, meta["optimizer"]))
    scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    torch.set_rng_state(tensors["rng.torch"])
    kind, pos, has_gauss, gauss = meta["rng"]["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss_next))
    return meta["trainer"]
