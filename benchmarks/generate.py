"""Uncertainty of generated answers: SmolLM2-135M-Instruct on XQuAD (passage given) and NQ-open (closed book).

Per set: greedy accuracy under every correctness rule, and per estimator the AUROC for detecting wrong
answers (95% bootstrap interval), PRR, AURC, accuracy at 50/80% coverage and seconds per question.
Generations are cached in ``benchmarks/work/generate-cache`` (JSON), so a rerun re-scores without
re-generating. Also: throughput of one batched call (greedy + K samples, prompt run once) against
K + 1 separate ``generate`` calls, and, when an lm-polygraph environment is present, lm-polygraph's
estimators on the same samples (``benchmarks/polygraph_side.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from caveat.generate import prompts
from caveat.generate.data import read_questions
from caveat.generate.estimators import Context, parse_estimators
from caveat.generate.evaluate import evaluate_generation
from caveat.generate.lm import load_lm
from caveat.generate.sampling import SampleCache, Sampler, SamplingConfig
from caveat.io import write_json_atomic

SETS = {"xquad": "xquad_en/xquad.en.json", "nq_open": "nq_open/NQ-open.dev.jsonl"}
RULE = "contains"
POLYGRAPH_PYTHON = os.environ.get("POLYGRAPH_PYTHON", "/work/polygraph-venv/bin/python")


def _throughput(lm, questions, samples: int, max_new_tokens: int) -> dict:
    """Seconds per question: one batched call (greedy + K samples) vs K + 1 separate generate calls."""
    import torch

    batched, separate = [], []
    for q in questions:
        prompt = lm.prompt(prompts.message(q))
        cfg = SamplingConfig(samples=samples, max_new_tokens=max_new_tokens)
        start = time.perf_counter()
        Sampler(lm, cfg)(prompt)
        batched.append(time.perf_counter() - start)
        ids = torch.tensor([lm.encode(prompt)])
        start = time.perf_counter()
        with torch.no_grad():
            for k in range(samples + 1):  # what a library without batching does: one call per answer
                lm.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=k > 0,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=max_new_tokens,
                    output_logits=True,
                    return_dict_in_generate=True,
                    pad_token_id=lm.tokenizer.pad_token_id,
                )
        separate.append(time.perf_counter() - start)
    return {
        "n": len(questions),
        "samples": samples,
        "batched_median_s": statistics.median(batched),
        "separate_median_s": statistics.median(separate),
        "ratio_separate_over_batched": statistics.median(s / b for s, b in zip(separate, batched)),
    }


def _polygraph(flag: str, path: Path) -> dict | None:
    """Run ``benchmarks/polygraph_side.py FLAG PATH`` in lm-polygraph's own environment (None if absent)."""
    if not Path(POLYGRAPH_PYTHON).is_file():
        return None
    out = subprocess.run(
        [POLYGRAPH_PYTHON, "-m", "benchmarks.polygraph_side", flag, str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout)


def bench_generate(
    data_root: Path,
    work: Path,
    *,
    n: dict[str, int] | None = None,
    samples: int = 8,
    max_new_tokens: int = 32,
    throughput_n: int = 10,
    n_boot: int = 1000,
) -> dict:
    n = n or {"xquad": 400, "nq_open": 300}
    lm = load_lm()
    cache = SampleCache(work / "generate-cache")
    cfg = SamplingConfig(samples=samples, max_new_tokens=max_new_tokens)
    names = parse_estimators("all", samples=samples)
    record: dict = {"model": lm.name, "samples": samples, "max_new_tokens": max_new_tokens, "rule": RULE, "sets": {}}
    for name, count in n.items():
        questions = read_questions(data_root / SETS[name], limit=count, seed=0)
        result = evaluate_generation(
            questions, lm, sampling=cfg, estimators=names, rule=RULE, cache=cache, context=Context(lm=lm), n_boot=n_boot
        )
        write_json_atomic(work / f"generate-{name}.json", result)  # per-question records stay out of results/
        est = result["estimators"]
        best = max((e for e in est if "auroc" in est[e]), key=lambda e: est[e]["auroc"], default=None)
        summary = {k: v for k, v in result.items() if k not in ("records", "estimators")}
        summary["estimators"] = {e: {k: v for k, v in m.items() if k != "risk_coverage"} for e, m in est.items()}
        summary["risk_coverage"] = {e: m.get("risk_coverage") for e, m in est.items()}
        if best is not None:
            summary["best"] = best
            summary["best_minus_msp"] = est[best]["auroc"] - est["msp"]["auroc"]
            summary["best_interval_clear_of_half"] = est[best]["auroc_ci"][0] > 0.5
        if name == "xquad":
            stats = work / "generate-xquad-stats.json"
            write_json_atomic(stats, _stats(questions, lm, cfg, cache, result))
            summary["polygraph"] = _polygraph("--stats", stats)
        record["sets"][name] = summary
    questions = read_questions(data_root / SETS["xquad"], limit=throughput_n, seed=1)
    record["throughput"] = _throughput(lm, questions, samples, max_new_tokens)
    record["cost"] = _cost(lm, questions, cfg, work)
    return record


def _cost(lm, questions, cfg: SamplingConfig, work: Path) -> dict:
    """Seconds per question for the estimators both libraries have (sequence probability, mean NLL per token,
    which lm-polygraph calls Perplexity, token entropy, lexical similarity, P(True)): caveat (fresh generation, no
    cache) vs lm-polygraph's pipeline."""
    from caveat.generate.evaluate import score_questions

    names = ["msp", "mean_nll", "mean_token_entropy", "lexical_similarity", "p_true"]  # END_TO_END_ESTIMATORS
    sampler = Sampler(lm, cfg)
    start = time.perf_counter()
    score_questions(questions, sampler, names, context=Context(lm=lm))
    ours = (time.perf_counter() - start) / len(questions)
    spec = work / "generate-cost-prompts.json"
    write_json_atomic(
        spec,
        {
            "prompts": [lm.prompt(prompts.message(q)) for q in questions],
            "samples": cfg.samples,
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
        },
    )
    theirs = _polygraph("--end-to-end", spec)
    return {
        "n": len(questions),
        "caveat_seconds_per_question": ours,
        "caveat_generate_calls_per_question": sampler.generate_calls / len(questions) + 0.0,
        "caveat_model_calls_per_question": (sampler.generate_calls + len(questions)) / len(questions),
        "polygraph": theirs,
    }


def _stats(questions, lm, cfg, cache, result) -> dict:
    """Per question: our token statistics and correctness, for lm-polygraph's estimators to read."""
    sampler = Sampler(lm, cfg, cache=cache)
    rows = []
    for q, r in zip(questions, result["records"]):
        g = sampler(lm.prompt(prompts.message(q)))
        rows.append(
            {
                "id": q.id,
                "correct": r["correct"],
                "greedy_text": g.greedy.text,
                "greedy_tokens": g.greedy.tokens,
                "greedy_logprobs": g.greedy.logprobs.tolist(),
                "greedy_entropies": g.greedy.entropies.tolist(),
                "sample_texts": [s.text for s in g.samples],
                "sample_tokens": [s.tokens for s in g.samples],
                "sample_logprobs": [s.logprobs.tolist() for s in g.samples],
                "scores": r["scores"],
            }
        )
    return {"rule": result["rule"], "stop_token_ids": sorted(lm.stop_ids), "records": rows}
