"""``run_training``: the train workflow of ``caveat train`` and ``caveat.train``: fit, then score
validation and test (when present) on the main process."""

from __future__ import annotations

import os
from pathlib import Path

from caveat.config import RunConfig
from caveat.evaluation.run import evaluate_run
from caveat.training.loop import Trainer


def is_main_process() -> bool:
    """True except in the non-zero ranks of a torchrun / accelerate launch."""
    return int(os.environ.get("RANK", "0")) == 0


def run_training(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Train, then evaluate validation and test (when present) on the main process; the summary as a dict."""
    trainer = Trainer(cfg, out, progress=progress)
    summary = trainer.fit(resume=resume)
    result = {
        "run": str(out),
        "objective": cfg.train.objective,
        "alpha": cfg.train.alpha,
        "training": {k: v for k, v in summary.items() if k != "history"},
    }
    if trainer.is_main_process:
        for split in ("validation", "test"):
            if split == "validation" or cfg.data.test or cfg.data.test_fraction:
                metrics = evaluate_run(out, split)
                result[split] = {k: v for k, v in metrics.items() if k not in ("per_class", "per_type")}
    return result
