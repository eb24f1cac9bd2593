"""Issue 6: explanation methods on the SST-2 run, 200 test sentences, all in one process.

The SST-2 run is copied and calibrated (5% target) so that "where the model abstains" is the policy's
own decision. LIME's stability is also measured at its own default sample size (5,000) on 20 sentences.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def bench_explain(sst2_run: Path, work: Path, *, max_examples: int = 200, lime_default_examples: int = 20) -> dict:
    from caveat.calibration.run import calibrate_run
    from caveat.explain.evaluate import explanation_faithfulness
    from caveat.models.rundir import open_run

    run = work / "sst2-calibrated"
    if not (run / "caveat.json").is_file() or not open_run(run).info.get("calibration"):
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(sst2_run, run, ignore=shutil.ignore_patterns("checkpoint*", "logs"))
        calibrate_run(run, target_risk=0.05)
    out = explanation_faithfulness(run, "test", max_examples=max_examples)
    lime_default = explanation_faithfulness(
        run, "test", methods=["lime"], max_examples=lime_default_examples, options={"lime": {"samples": 5000}}
    )
    return {
        "run": str(run),
        **out,
        "lime_default": {
            "samples": 5000,
            "n": lime_default["n"],
            "stability": lime_default["stability"]["lime"],
            "seconds": lime_default["methods"]["lime"]["seconds"],
        },
        **time_ig(run, max_examples=50),
    }


def time_ig(run: Path, *, max_examples: int = 50, steps: int = 32) -> dict:
    """Integrated gradients alone (32 steps, one batched pass) on the first test sentences: the
    per-sentence time the issue bounds, measured apart from the other methods' passes."""
    import numpy as np

    from caveat.data.resolve import resolve_split
    from caveat.explain import ExplainModel, explain
    from caveat.models.rundir import open_run

    model = ExplainModel.from_run(run)
    texts = [ex.text for ex in resolve_split(open_run(run), "test").examples[:max_examples]]
    explain(model, texts[0], method="ig", steps=steps)  # warm-up
    seconds = [explain(model, t, method="ig", steps=steps).seconds for t in texts]
    words = [len(t.split()) for t in texts]
    median = float(np.median(seconds))
    return {
        "ig_timing": {
            "n": len(texts),
            "steps": steps,
            "median_seconds": median,
            "p90_seconds": float(np.quantile(seconds, 0.9)),
            "mean_words": float(np.mean(words)),
        },
        "ig_median_seconds": median,
        "ig_under_half_a_second": bool(median < 0.5),
    }
