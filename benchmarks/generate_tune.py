"""Sampling temperature and meaning threshold tuned on held-out questions (issue 20): ``caveat generate-tune``'s
procedure on 100 XQuAD questions with SmolLM2-135M-Instruct. Semantic entropy over K = 5 samples at temperatures
0.3, 0.5 and 1.0 and meaning thresholds 0.8-0.95; the pair with the best AUROC on a seeded half of the questions
against the defaults (0.5, 0.9) on the other half, paired bootstrap. Generations are cached in
``work/generate-tune-cache`` (JSON), so a rerun only re-scores.
"""

from __future__ import annotations

from pathlib import Path

from caveat.generate.data import read_questions
from caveat.generate.lm import load_lm
from caveat.generate.sampling import SampleCache, SamplingConfig
from caveat.generate.tune import tune_sampling

TEMPERATURES = (0.3, 0.5, 1.0)
THRESHOLDS = (0.8, 0.85, 0.9, 0.95)


def bench_generate_tune(data_root: Path, work: Path, *, n: int = 100, samples: int = 5, n_boot: int = 1000) -> dict:
    questions = read_questions(data_root / "xquad_en" / "xquad.en.json", limit=n, seed=1)
    lm = load_lm()
    result = tune_sampling(
        questions,
        lm,
        estimator="semantic_entropy",
        rule="contains",
        temperatures=TEMPERATURES,
        thresholds=THRESHOLDS,
        sampling=SamplingConfig(samples=samples, max_new_tokens=32),
        cache=SampleCache(work / "generate-tune-cache"),
        n_boot=n_boot,
    )
    return {"data": "xquad_en/xquad.en.json (seeded sample, seed 1)", **result}


def rows(r: dict) -> list[str]:
    """The README table's rows for a generate_tune record."""
    h = r["held_out"]
    lo, hi = h["difference_interval"]
    chosen = f"T {r['temperature']:g}" + (f", threshold {r['meaning_threshold']:g}" if r["threshold_used"] else "")
    return [
        f"| xquad: {r['estimator']} with temperature and meaning threshold tuned on {r['n_tuning']} questions "
        f"({chosen}) vs the defaults, on {r['n_held_out']} others (K {r['samples']}) | AUROC, paired bootstrap | "
        f"{h['chosen_auroc']:.3f} vs {h['default_auroc']:.3f}: {h['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
        "report | | |"
    ]
