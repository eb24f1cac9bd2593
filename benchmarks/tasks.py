"""Accuracy benchmarks: train the default backbone on real data with the shipped configs, score test."""

from __future__ import annotations

import json
from pathlib import Path

from caveat.config import load_config
from caveat.training.validation_metric import stored_metric

ROOT = Path(__file__).resolve().parents[1]

# name: (config, metric, target from the issue)
TASKS = {
    "clinc150": ("examples/clinc150.yaml", "accuracy", 0.95),
    "conll2003": ("examples/conll2003.yaml", "f1", 0.86),
    "sst2": ("examples/sst2.yaml", "accuracy", 0.88),
    "semeval": ("examples/semeval.yaml", "relation_macro_f1", 0.86),  # official SemEval-2010 Task 8 score
}


def uncalibrated_copy(run_dir: Path, copy: Path) -> Path:
    """``copy``, replaced by a copy of ``run_dir`` without its calibration, logs and metrics (and without the
    calibration summary in caveat.json, which would describe a file the copy lacks): a run to calibrate afresh."""
    import shutil

    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("calibration*", "logs", "metrics.json"))
    info = json.loads((copy / "caveat.json").read_text())
    if info.pop("calibration", None) is not None:
        (copy / "caveat.json").write_text(json.dumps(info, indent=2))
    return copy


def _same_run(run_dir: Path, cfg) -> bool:
    """A finished run with this exact config (data.root aside) can be scored again without retraining."""
    from caveat.training.select import finished_config

    saved = finished_config(run_dir)
    if saved is None:
        return False
    old, new = saved.model_dump(mode="json"), cfg.model_dump(mode="json")
    old["data"]["root"] = new["data"]["root"] = None
    for cfg in (old, new):  # sections the objective never reads
        t = cfg["train"]
        if t["objective"] not in ("fgm", "pgd", "freelb"):
            t.pop("adv")
        if t["objective"] != "mixup":
            t.pop("mixup")
    return old == new


def bench_task(name: str, data_root: Path, work: Path, *, quick: bool = False, reuse: bool = True) -> dict:
    """Train (unless an identical finished run is in ``work``) and evaluate one task; returns its record."""
    from caveat.evaluation.run import evaluate_run
    from caveat.training.run import run_training

    config, metric, target = TASKS[name]
    overrides = [f"data.root={data_root}"] + (["train.max_steps=10", "train.eval_batch_size=256"] if quick else [])
    cfg = load_config(ROOT / config, overrides)
    run_dir = work / name
    if not (reuse and _same_run(run_dir, cfg)):
        run_training(cfg, run_dir, progress=False)
    info = json.loads((run_dir / "caveat.json").read_text())
    test = evaluate_run(run_dir, "test")
    keep = {k: v for k, v in test.items() if k != "per_class"}
    return {
        "task": name,
        "config": config,
        "model": cfg.model.name_or_path,
        "objective": cfg.train.objective,
        "epochs": info["training"]["epochs"],
        "metric": metric,
        "value": test[metric],
        "target": target,
        "met": bool(test[metric] >= target) if not quick else None,
        "train_seconds": info["training"]["seconds"],
        "best_validation": info["training"]["best_validation"],
        "best_validation_metric": stored_metric(info["training"], cfg.task),  # train.select_metric
        "test": keep,
        "quick": quick,
    }
