"""Choose the robustness strength alpha on validation (a grid; every run kept under OUT/sweep/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from caveat.config import RunConfig
from caveat.errors import ConfigError
from caveat.io import write_json_atomic, write_text_atomic


def sweep_alpha(config: RunConfig, out: str | Path, alphas: list[float], *, progress: bool = True) -> dict:
    """Train one run per alpha into ``out/sweep/alpha=A``; copy the best (highest validation score)
    to ``out``; write the whole table as ``out/sweep.json`` and ``out/sweep.md``."""
    from caveat.cli.common import is_main_process
    from caveat.cli.train import run_training

    if not alphas or any(a < 0 for a in alphas):
        raise ConfigError(f"alphas must be a non-empty list of numbers >= 0. Got {alphas}.")
    out = Path(out)
    rows = []
    for alpha in alphas:
        cfg = config.model_copy(update={"train": config.train.model_copy(update={"alpha": alpha})})
        run_dir = out / "sweep" / f"alpha={alpha:g}"
        result = run_training(cfg, run_dir, progress=progress)
        rows.append({"alpha": alpha, "run": str(run_dir), "best_validation": result["training"]["best_validation"],
                     "seconds": result["training"]["seconds"]})
    if not is_main_process():
        return {}
    best = max(rows, key=lambda r: r["best_validation"])
    for name in ("model", "caveat.json", "metrics.json"):
        src, dst = Path(best["run"]) / name, out / name
        if dst.is_dir():
            shutil.rmtree(dst)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    table = {"objective": config.train.objective, "best_alpha": best["alpha"], "rows": rows}
    write_json_atomic(out / "sweep.json", table)
    lines = [f"| alpha | validation ({config.train.objective}) | seconds |", "|---:|---:|---:|"]
    lines += [f"| {r['alpha']:g}{' (best)' if r is best else ''} | {r['best_validation']:.4f} | {r['seconds']} |" for r in rows]
    write_text_atomic(out / "sweep.md", "\n".join(lines) + "\n")
    return table
