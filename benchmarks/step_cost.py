"""Cost per training step: each objective against caveat's ERM, and caveat's ERM loop against a bare
PyTorch loop over the same model and batches. Variants are interleaved across repeats and reported as
medians, so that a noisy machine slows them alike."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from caveat.config import load_config

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ["erm", "fgm", "pgd", "freelb"]


def _caveat_step_times(cfg, out: Path, steps: int) -> list[float]:
    from caveat.training.loop import Trainer

    stamps: list[float] = []
    Trainer(cfg, out, progress=False, callbacks=[lambda state, stats: stamps.append(time.perf_counter())]).fit()
    return [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]  # the last step also validates: dropped


def _bare_step_times(cfg, steps: int) -> list[float]:
    """The textbook loop: forward, cross-entropy, backward, clip, AdamW, schedule; same batches and model."""
    from torch.utils.data import DataLoader

    from caveat.data.labels import LabelMap
    from caveat.data.load import load_data
    from caveat.models.backbone import load_backbone
    from caveat.models.classifier import CaveatModel
    from caveat.models.encoding import Collator
    from caveat.training.loop import EpochBatches
    from caveat.training.optim import build_optimizer, linear_schedule
    from caveat.training.scoring import encode_split

    torch.manual_seed(cfg.seed)
    splits = load_data(cfg)
    labels = LabelMap.from_splits(splits.train, cfg.task)
    tokenizer, encoder = load_backbone(cfg.model.name_or_path)
    model = CaveatModel(encoder, len(labels), task=cfg.task).train()
    rows = encode_split(tokenizer, splits.train, labels, cfg.task, cfg.train.max_length)
    sampler = EpochBatches(len(rows), cfg.train.batch_size, cfg.seed, [len(r["input_ids"]) for r in rows])
    loader = DataLoader(rows, batch_sampler=sampler, collate_fn=Collator(tokenizer.pad_token_id))
    optimizer = build_optimizer(model, cfg.train)
    scheduler = linear_schedule(optimizer, steps, cfg.train.warmup_ratio)
    stamps = []
    for i, batch in enumerate(loader):
        if i == steps:
            break
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        F.cross_entropy(logits, batch["labels"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]


def bench_step_cost(data_root: Path, work: Path, *, steps: int = 18, repeats: int = 3, quick: bool = False) -> dict:
    """Median seconds per step of each variant on SST-2 batches of 32, and ratios to ERM."""
    if quick:
        steps, repeats = 5, 1
    base = [f"data.root={data_root}", f"train.max_steps={steps}", "train.log_every=1000"]
    times: dict[str, list[float]] = {name: [] for name in ["bare", *OBJECTIVES]}
    for _ in range(repeats):
        times["bare"] += _bare_step_times(load_config(ROOT / "examples/sst2.yaml", base), steps)
        for objective in OBJECTIVES:
            cfg = load_config(ROOT / "examples/sst2.yaml", base + [f"train.objective={objective}", "train.adv.steps=3"])
            times[objective] += _caveat_step_times(cfg, work / f"cost-{objective}", steps)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "data": "sst2 train, batch 32, group_by_length",
        "steps_timed_per_repeat": steps - 2,
        "repeats": repeats,
        "median_seconds_per_step": median,
        "ratio_to_erm": {k: median[k] / median["erm"] for k in OBJECTIVES},
        "erm_over_bare": median["erm"] / median["bare"],
        "targets": {"fgm": 2.2, "pgd": 4.3, "freelb": 4.3, "erm_over_bare": 1.10},
        "quick": quick,
    }
