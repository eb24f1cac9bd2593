"""Two CPU processes (gloo, through torchrun + Accelerate) take the same steps as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_overrides
from tests.fakes import planted_texts, write_jsonl


def run(cmd: list[str], cwd: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


@pytest.mark.parametrize("objective, lora", [("erm", False), ("pgd", False), ("erm", True)])
def test_two_processes_match_one(request, tmp_path, objective, lora):
    """With ``lora``: a tiny decoder with LoRA adapters (DDP over the adapters and head only)."""
    backbone = request.getfixturevalue("tiny_decoder" if lora else "tiny_backbone")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun ships with torch; it should be next to the python executable"
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", planted_texts(96, seed=1))
    write_jsonl(data / "validation.jsonl", planted_texts(62, seed=2))  # 31 validation after carving: uneven last batch
    write_jsonl(data / "test.jsonl", planted_texts(20, seed=3))
    overrides = tiny_overrides(backbone, data, epochs=2, objective=objective, eval_batch_size=8) + [
        "model.dropout=0",
        "model.head_dropout=0",
    ]  # no dropout: the processes' RNG streams differ
    if lora:
        overrides += ["model.peft.method=lora", "model.peft.r=4", "model.peft.dropout=0"]
    args = ["-m", "caveat", "train", "--no-progress", *[x for o in overrides for x in ("--set", o)]]
    one = run([sys.executable, *args, "--out", str(tmp_path / "one")], tmp_path)
    two = run([torchrun, "--standalone", "--nproc_per_node", "2", *args, "--out", str(tmp_path / "two")], tmp_path)
    assert two["training"]["processes"] == 2 and one["training"]["processes"] == 1
    assert two["training"]["steps"] == one["training"]["steps"] == 12
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    a = load_file(str(tmp_path / "one" / "model" / weights))
    assert a and (not lora or all("lora_" in key for key in a))
    for name in (weights, "head.safetensors"):
        a = load_file(str(tmp_path / "one" / "model" / name))
        b = load_file(str(tmp_path / "two" / "model" / name))
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    # distributed evaluation gathers every validation example exactly once
    hist_one = json.loads((tmp_path / "one" / "caveat.json").read_text())["training"]["history"]
    hist_two = json.loads((tmp_path / "two" / "caveat.json").read_text())["training"]["history"]
    assert [h["validation_n"] for h in hist_two] == [h["validation_n"] for h in hist_one] == [31, 31]
    assert [h["validation_accuracy"] for h in hist_two] == pytest.approx([h["validation_accuracy"] for h in hist_one])
