"""Uncertainty of generated summaries (issue 20): SmolLM2-135M-Instruct writes one-sentence summaries of XSum
articles; each estimator is judged by its prediction-rejection ratio (PRR) against the summaries' ROUGE-L F
(rouge-score, stemmed, as lm-polygraph scores XSum), with a 95% bootstrap interval.

Single-pass estimators only (no samples): maximum sequence probability, perplexity, mean token entropy and
RAUQ, all from the one greedy generate call per article. The per-article records stay in
``benchmarks/work/generate-summaries.json``.
"""

from __future__ import annotations

from pathlib import Path

from caveat.generate.documents import read_documents
from caveat.generate.estimators import Context
from caveat.generate.evaluate import SUMMARY_MAX_NEW_TOKENS, evaluate_summaries
from caveat.generate.lm import load_lm
from caveat.generate.sampling import SamplingConfig
from caveat.io import write_json_atomic

ESTIMATORS = ["msp", "perplexity", "mean_token_entropy", "rauq"]


def bench_generate_summaries(data_root: Path, work: Path, *, n: int = 300, n_boot: int = 1000) -> dict:
    lm = load_lm()
    documents = read_documents(data_root / "xsum" / "test.jsonl", limit=n, seed=0)
    cfg = SamplingConfig(samples=0, max_new_tokens=SUMMARY_MAX_NEW_TOKENS)
    result = evaluate_summaries(
        documents, lm, sampling=cfg, estimators=ESTIMATORS, quality="rougeL", context=Context(lm=lm), n_boot=n_boot
    )
    write_json_atomic(work / "generate-summaries.json", result)
    record = {k: v for k, v in result.items() if k not in ("records", "estimators")}
    record["estimators"] = {
        e: {k: v for k, v in row.items() if k != "quality_coverage"} for e, row in result["estimators"].items()
    }
    scored = {e: row for e, row in record["estimators"].items() if "prr" in row}
    if scored:
        best = max(scored, key=lambda e: scored[e]["prr"])
        record["best"] = best
        record["best_prr"] = scored[best]["prr"]
        record["best_interval_clear_of_zero"] = scored[best]["prr_ci"][0] > 0
    return record


def rows(r: dict) -> list[str]:
    """The README table's rows for a generate_summaries record."""
    est = {e: row for e, row in r["estimators"].items() if "prr" in row}
    if not est:
        return []
    ranked = sorted(est, key=lambda e: -est[e]["prr"])
    cells = "; ".join(f"{e} {est[e]['prr']:.3f} [{est[e]['prr_ci'][0]:.3f}, {est[e]['prr_ci'][1]:.3f}]" for e in ranked)
    met = r["best_prr"] >= 0.30 and r["best_interval_clear_of_zero"]
    return [
        f"| xsum: SmolLM2-135M-Instruct one-sentence summaries, {r['n']} articles, one greedy pass | mean ROUGE-L | "
        f"{r['mean_quality'][r['quality']]:.3f} | report | | |",
        f"| xsum: PRR against ROUGE-L [95% bootstrap] per single-pass estimator | PRR | {cells} | best ≥ 0.30, "
        f"interval clear of 0 | {'yes' if met else 'no'} | |",
    ]
