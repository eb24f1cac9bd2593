"""Single-pass uncertainty of generated answers (issue 20): probes, density and RAUQ from the one greedy pass.

SmolLM2-135M-Instruct, greedy answers only (no samples). Per set (XQuAD with its passage, NQ-open closed book):

- the held-out questions are the very sample ``benchmarks/generate.py`` scores (same size, same seed), so the
  sampling-based figures in ``generate.json`` (lm-polygraph's among them) are on the same questions and the same
  greedy answers;
- a correctness probe, the stacked probe (the probe's out-of-fold log-odds with msp, mean NLL and mean token
  entropy) and a Mahalanobis density are fitted on other questions of the same file
  (``caveat.generate.fit.fit_probe_set``: layer, position and penalty chosen by 5-fold AUROC on the fitting
  questions only);
- both probes score both sets' held-out questions, so in-distribution and transfer (XQuAD -> NQ-open and the
  reverse) come from the same generations;
- the paired bootstrap interval of (best single-pass AUROC - mean token entropy AUROC) on the same questions;
  mean token entropy is lm-polygraph's best estimator on these XQuAD questions (it agrees with ours to 0.000,
  ``generate.json``);
- ``generate-calibrate``'s risk control (:meth:`GenerationPolicy.fit`) on 200 of the held-out XQuAD questions at
  target risk 0.5, delta 0.05, its realised risk on the other 200, over seeded splits;
- the cost: seconds per question of greedy generation alone, with the hidden states kept (the probes'
  input) and with the attentions kept (RAUQ's), interleaved, medians of per-question ratios.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from caveat.generate import prompts
from caveat.generate.correctness import get_rule, judge
from caveat.generate.data import read_questions, sample
from caveat.generate.estimators import Context
from caveat.generate.evaluate import score_questions
from caveat.generate.fit import STACK_INPUTS, fit_probe_set
from caveat.generate.internals import POSITIONS, feature_stack
from caveat.generate.lm import load_lm
from caveat.generate.metrics import estimator_metrics, paired_auroc_difference
from caveat.generate.policy import GenerationPolicy
from caveat.generate.probes import logit
from caveat.generate.sampling import Sampler, SamplingConfig

SETS = {"xquad": "xquad_en/xquad.en.json", "nq_open": "nq_open/NQ-open.dev.jsonl"}
HELD_OUT = {"xquad": 400, "nq_open": 300}  # = benchmarks/generate.py's samples (seed 0)
N_FIT = {"xquad": 790, "nq_open": 400}  # XQuAD: every other question of the file
RULE = "contains"
LOGIT_BASED = ["msp", "perplexity", "mean_token_entropy"]


def _split(data_root: Path, name: str, held_out: int, n_fit: int) -> tuple[list, list]:
    """(fitting questions, held-out questions): the held-out sample of generate.py and a seeded sample of the rest."""
    path = data_root / SETS[name]
    held = read_questions(path, limit=held_out, seed=0)
    ids = {q.id for q in held}
    rest = [q for q in read_questions(path) if q.id not in ids]
    return sample(rest, n_fit, seed=1), held


def _generated(work: Path, tag: str, questions, lm, cfg: SamplingConfig, reuse: bool) -> dict[str, np.ndarray]:
    """One greedy pass per question with hidden states and attentions kept: features of every layer at both
    positions, the logit-based and RAUQ scores, errors and the generate call's seconds. Kept in ``work`` as .npz
    (plain arrays, no pickle) so a rerun fits and scores again without generating."""
    path = work / f"generate-single-{tag}.npz"
    if reuse and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return dict(z)
    sampler = Sampler(lm, cfg, internals={"hidden_states", "attentions"})
    scored = score_questions(questions, sampler, [*LOGIT_BASED, "rauq"], context=Context(lm=lm))
    arrays = {f"features.{pos}": feature_stack([g.extra for g in scored.generations], pos) for pos in POSITIONS}
    arrays |= {f"score.{k}": v for k, v in scored.scores.items()}
    arrays["errors"] = ~judge(scored.answers, scored.questions, get_rule(RULE))
    arrays["seconds"] = scored.sampling_seconds
    work.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def _tokens(arrays: dict) -> dict[str, np.ndarray]:
    """The stacked probe's inputs (``caveat.generate.fit.STACK_INPUTS``) from the kept scores (mean NLL = log
    perplexity)."""
    tokens = {
        "msp": arrays["score.msp"],
        "mean_nll": np.log(arrays["score.perplexity"]),
        "mean_token_entropy": arrays["score.mean_token_entropy"],
    }
    return {n: tokens[n] for n in STACK_INPUTS}


def _features(arrays: dict) -> dict[str, np.ndarray]:
    return {pos: arrays[f"features.{pos}"] for pos in POSITIONS}


def _calibrate(records: list[dict], estimator: str, cfg: SamplingConfig, *, splits: int, target: float) -> dict:
    """generate-calibrate's risk control on half the held-out questions, checked on the other half."""
    scores = np.array([r["scores"][estimator] for r in records])
    errors = np.array([not r["correct"] for r in records])
    n_cal = len(records) // 2
    rows = []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(records))
        cal, test = order[:n_cal], order[n_cal:]
        policy = GenerationPolicy.fit(
            scores[cal],
            errors[cal],
            lm="",
            sampling=cfg,
            estimator=estimator,
            rule=RULE,
            target_risk=target,
            delta=0.05,
            allow_empty=True,
        )
        answered = policy.risk.decide(scores[test])
        rows.append(
            {
                "calibration_coverage": float(policy.risk.decide(scores[cal]).mean()),
                "test_coverage": float(answered.mean()),
                "test_risk": float(errors[test][answered].mean()) if answered.any() else None,
            }
        )
    cov = [r["test_coverage"] for r in rows]
    risks = [r["test_risk"] for r in rows if r["test_risk"] is not None]
    return {
        "estimator": estimator,
        "target_risk": target,
        "delta": 0.05,
        "calibration_questions": n_cal,
        "base_error": float(errors.mean()),
        "splits": splits,
        "median_test_coverage": float(np.median(cov)),
        "median_test_risk": float(np.median(risks)) if risks else None,
        "share_of_splits_over_target": float(np.mean([r > target for r in risks])) if risks else None,
        "share_of_splits_certifying_nothing": float(np.mean([c == 0 for c in cov])),
        "first_split": rows[0],
    }


def _cost(lm, questions, max_new_tokens: int) -> dict:
    """Seconds per question: greedy alone, with hidden states kept, with attentions kept; interleaved."""
    cfg = SamplingConfig(samples=0, max_new_tokens=max_new_tokens)
    kinds = {"greedy": set(), "hidden_states": {"hidden_states"}, "attentions": {"attentions"}}
    samplers = {k: Sampler(lm, cfg, internals=v) for k, v in kinds.items()}
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    for q in questions:
        prompt = lm.prompt(prompts.message(q))
        for k, s in samplers.items():
            start = time.perf_counter()
            s(prompt)
            seconds[k].append(time.perf_counter() - start)
    base = seconds["greedy"]
    return {
        "n": len(questions),
        "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
        "ratio_to_greedy": {
            k: statistics.median(x / b for x, b in zip(v, base)) for k, v in seconds.items() if k != "greedy"
        },
    }


def bench_generate_single(
    data_root: Path,
    work: Path,
    *,
    held_out: dict[str, int] | None = None,
    n_fit: dict[str, int] | None = None,
    max_new_tokens: int = 32,
    cost_n: int = 20,
    splits: int = 20,
    n_boot: int = 1000,
    reuse: bool = True,
) -> dict:
    held_out = held_out or HELD_OUT
    n_fit = n_fit or N_FIT
    lm = load_lm()
    cfg = SamplingConfig(samples=0, max_new_tokens=max_new_tokens)
    split = {name: _split(data_root, name, held_out[name], n_fit[name]) for name in SETS}
    fit, held = {}, {}
    for name, (fit_q, held_q) in split.items():
        fit[name] = _generated(work, f"{name}-fit-{len(fit_q)}", fit_q, lm, cfg, reuse)
        held[name] = _generated(work, f"{name}-held-{len(held_q)}", held_q, lm, cfg, reuse)
    probes, record = {}, {"model": lm.name, "rule": RULE, "max_new_tokens": max_new_tokens, "fit": {}, "sets": {}}
    for name in SETS:
        probes[name], summary = fit_probe_set(
            _features(fit[name]), fit[name]["errors"], token_scores=_tokens(fit[name])
        )
        probes[name].meta = {"model": lm.name, "sampling": {"samples": 0, "max_new_tokens": max_new_tokens}}
        probes[name].save(work / f"probe-{name}")  # usable as probe:benchmarks/work/probe-<set>
        c = summary["correctness"]
        record["fit"][name] = {
            "questions": summary["n"],
            "error_rate": summary["error_rate"],
            "layer": c["layer"],
            "position": c["position"],
            "cross_validated_auroc": c["held_out_auroc"][c["position"]][c["layer"]],
            "l2": probes[name].specs["correctness"]["l2"],
            "cross_validated_auroc_tuned": probes[name].specs["correctness"]["held_out_auroc"],
            "stacked_cross_validated_auroc": summary["stacked"]["held_out_auroc"],
        }
    for name in SETS:
        arrays = held[name]
        errors = arrays["errors"].astype(bool)
        col = {k.removeprefix("score."): v for k, v in arrays.items() if k.startswith("score.")}
        for source, ps in probes.items():
            spec = ps.specs["correctness"]
            x = arrays[f"features.{spec['position']}"][:, spec["layer"]]  # the density and stack share it
            col[f"probe({source})"] = ps.scorers["correctness"].score(x)
            col[f"mahalanobis({source})"] = ps.scorers["mahalanobis"].score(x)
            col[f"rde({source})"] = ps.scorers["rde"].score(x)
            tokens = _tokens(arrays)
            z = np.column_stack([logit(col[f"probe({source})"]), *(tokens[n] for n in ps.specs["stacked"]["inputs"])])
            col[f"stacked({source})"] = ps.scorers["stacked"].score(z)
        entry: dict = {
            "n": len(errors),
            "accuracy": float(1 - errors.mean()),
            "seconds_per_question": float(np.mean(arrays["seconds"])),
        }
        record["sets"][name] = entry
        if errors.all() or not errors.any():  # one outcome only (a --quick run): no AUROC to compare
            entry["warning"] = f"every greedy answer is {'wrong' if errors.all() else 'right'} under {RULE}"
            continue
        entry["estimators"] = {e: estimator_metrics(s, errors, n_boot=n_boot) for e, s in col.items()}
        best = max(col, key=lambda e: entry["estimators"][e]["auroc"])
        other = next(o for o in SETS if o != name)
        entry |= {
            "best": best,
            "best_minus_mean_token_entropy": paired_auroc_difference(
                col[best], col["mean_token_entropy"], errors, n_boot=n_boot
            ),
            "transfer": {
                "own_probe_auroc": entry["estimators"][f"probe({name})"]["auroc"],
                f"probe({other})_auroc": entry["estimators"][f"probe({other})"]["auroc"],
            },
        }
        if name == "xquad":
            records = [
                {"scores": {e: float(s[i]) for e, s in col.items()}, "correct": not errors[i]}
                for i in range(len(errors))
            ]
            entry["calibrate"] = {
                e: _calibrate(records, e, cfg, splits=splits, target=0.5)
                for e in dict.fromkeys((f"stacked({name})", f"probe({name})", "mean_token_entropy", best))
            }
    for name in SETS:  # each probe's AUROC drop under transfer: on its own set minus on the other
        other = next(o for o in SETS if o != name)
        own, there = record["sets"][name].get("estimators"), record["sets"][other].get("estimators")
        if own and there:
            for kind in ("probe", "stacked"):
                record["fit"][name][f"{kind}_auroc_drop_on_{other}"] = (
                    own[f"{kind}({name})"]["auroc"] - there[f"{kind}({name})"]["auroc"]
                )
    cost_questions = read_questions(data_root / SETS["xquad"], limit=cost_n, seed=1)
    record["cost"] = _cost(lm, cost_questions, max_new_tokens)
    return record


def rows(r: dict) -> list[str]:
    """The README table's rows for a generate_single record."""
    lines = []
    x = r["sets"]["xquad"]
    if "estimators" not in x:
        return lines
    est = x["estimators"]
    ranked = sorted(est, key=lambda e: -est[e]["auroc"])
    cells = "; ".join(
        f"{e} {est[e]['auroc']:.3f} [{est[e]['auroc_ci'][0]:.3f}, {est[e]['auroc_ci'][1]:.3f}]" for e in ranked
    )
    f = r["fit"]["xquad"]
    lines.append(
        f"| xquad, one greedy pass (no samples): wrong-answer AUROC [95% bootstrap], {x['n']} held-out questions; "
        f"probes fitted on {f['questions']} others (layer {f['layer']}, {f['position']}, L2 {f['l2']:g}) | AUROC | "
        f"{cells} | "
        f"best ≥ 0.80 | {'yes' if est[ranked[0]]['auroc'] >= 0.80 else 'no'} | |"
    )
    d = x["best_minus_mean_token_entropy"]
    beat = d["difference"] >= 0.05 and d["interval_clear_of_zero"]
    lines.append(
        f"| xquad: best single-pass ({x['best']}) − lm-polygraph's best on these questions (mean token entropy, "
        f"generate.json) | AUROC, paired bootstrap | {d['difference']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | "
        f"≥ +0.05, interval clear of 0 | {'yes' if beat else 'no'} | |"
    )
    for name in r["sets"]:
        other = next(o for o in r["sets"] if o != name)
        for kind in ("probe", "stacked"):
            drop = r["fit"][name].get(f"{kind}_auroc_drop_on_{other}")
            if drop is None:
                continue
            own = r["sets"][name]["estimators"][f"{kind}({name})"]["auroc"]
            lines.append(
                f"| {kind} fitted on {name} ({r['fit'][name]['questions']} questions, error rate "
                f"{r['fit'][name]['error_rate']:.2f}): AUROC on its own held-out set − on {other} | AUROC drop | "
                f"{own:.3f} − {own - drop:.3f} = {drop:+.3f} | ≤ 0.05 | {'yes' if drop <= 0.05 else 'no'} | |"
            )
    c = r["cost"]["ratio_to_greedy"]
    lines.append(
        f"| cost of keeping the probes' hidden states / RAUQ's attentions in the greedy generate call "
        f"({r['cost']['n']} XQuAD questions, interleaved, median ratio) | × greedy alone | "
        f"{c['hidden_states']:.3f} / {c['attentions']:.3f} | ≤ 1.05 | "
        f"{'yes' if max(c.values()) <= 1.05 else 'no'} | |"
    )
    for e, k in x.get("calibrate", {}).items():
        ok = "yes" if k["median_test_coverage"] >= 0.30 and (k["median_test_risk"] or 1) <= 0.5 else "no"
        lines.append(
            f"| xquad generate-calibrate ({e}), target risk {k['target_risk']}, δ {k['delta']}, "
            f"{k['calibration_questions']} calibration questions (base error {k['base_error']:.2f}), realised on the "
            f"other half, median of {k['splits']} splits | coverage; risk | {k['median_test_coverage']:.2f}; "
            f"{k['median_test_risk'] if k['median_test_risk'] is None else round(k['median_test_risk'], 3)} "
            f"(over target in {k['share_of_splits_over_target'] or 0:.0%} of splits, nothing certified in "
            f"{k['share_of_splits_certifying_nothing']:.0%}) | coverage ≥ 0.30, risk ≤ 0.5 | {ok} | |"
        )
    return lines
