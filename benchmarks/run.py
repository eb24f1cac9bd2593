"""``make bench``: real-data benchmarks of the default backbone on CPU.

    python -m benchmarks.run [--only clinc150,conll2003,sst2,step_cost,uncertainty,spans,ensemble,distill,service,...]
                             [--quick] [--no-reuse]

Reads ``$CAVEAT_DATA`` (default ../shared/data); writes ``benchmarks/results/<name>.json``,
``benchmarks/results/README.md`` and the table between the bench markers of the top-level README.
Runs live in ``benchmarks/work/`` (ignored by git); a finished run with the same config is re-scored,
not retrained, unless ``--no-reuse``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import time
from pathlib import Path

from benchmarks.benches import BENCHES, Context, default_names, unknown
from benchmarks.distill import distill_rows
from benchmarks.tasks import TASKS
from caveat.io import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"


def _bench_rows(name: str, module: str, function: str = "rows") -> list[str]:
    """The table rows ``module.function`` makes of ``RESULTS/name.json``; none when that bench has not run. The
    module is imported only then (some import the generation stack)."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return []
    return getattr(importlib.import_module(module), function)(json.loads(path.read_text()))


def table() -> str:
    """Markdown from whatever results exist."""
    lines = ["| benchmark | metric | value | target | met | train time |", "|---|---|---:|---:|:---:|---:|"]
    for name in TASKS:
        path = RESULTS / f"{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            lines.append(
                f"| {name} ({r['objective']}, {r['epochs']:g} epochs) | test {r['metric']} | {r['value']:.4f} | "
                f"≥ {r['target']} | {'yes' if r['met'] else 'no'} | {r['train_seconds'] / 60:.1f} min |"
            )
    path = RESULTS / "step_cost.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for k, v in r["ratio_to_erm"].items():
            if k != "erm":
                target = r["targets"][k]
                lines.append(
                    f"| cost per step, {k}{'-3' if k in ('pgd', 'freelb') else ''} / ERM | ratio | {v:.2f}× | "
                    f"≤ {target}× | {'yes' if v <= target else 'no'} | |"
                )
        v = r["erm_over_bare"]
        lines.append(
            f"| cost per step, caveat ERM / bare PyTorch loop | ratio | {v:.3f}× | ≤ 1.10× | "
            f"{'yes' if v <= 1.10 else 'no'} | |"
        )
    path = RESULTS / "uncertainty.json"
    if path.is_file():
        r = json.loads(path.read_text())
        cr = r["conformal_resplits"]
        lines += [
            f"| CLINC150 ECE after temperature scaling | test | {r['ece_calibrated']:.4f} (raw {r['ece']:.4f}) | "
            f"≤ 0.015 | {'yes' if r['ece_calibrated'] <= 0.015 else 'no'} | |",
            f"| CLINC150 OOD AUROC, best = {r['best_ood_method']} | oos_test | "
            f"{r['ood_auroc'][r['best_ood_method']]:.4f} | ≥ 0.97 | "
            f"{'yes' if r['ood_auroc'][r['best_ood_method']] >= 0.97 else 'no'} | |",
            "| CLINC150 90% conformal coverage, 100 re-splits (LAC / APS / RAPS) | val+test | "
            f"{cr['lac']['coverage_mean']:.4f} / {cr['aps']['coverage_mean']:.4f} / {cr['raps']['coverage_mean']:.4f} "
            "| 0.90 ± 0.015 | "
            f"{'yes' if all(abs(cr[m]['coverage_mean'] - 0.9) <= 0.015 for m in ('lac', 'aps', 'raps')) else 'no'} | |",
            f"| mean set size (LAC / APS / RAPS) | val+test | {cr['lac']['set_size_mean']:.2f} / "
            f"{cr['aps']['set_size_mean']:.2f} / {cr['raps']['set_size_mean']:.2f} | report | | |",
            "| risk bound for an 18% out-of-scope share (that of test + oos_test) from 200 out-of-scope calibration "
            f"texts | feasible | {'yes' if r['risk_at_test_share']['feasible'] else 'no: abstains on all'} | report | "
            "| |",
            "| risk-controlled abstention (2%, δ 0.05, bound set for 10% out-of-scope), test + oos_test (18%) | "
            f"error on answered | {r['abstention_combined']['risk']:.4f} at coverage "
            f"{r['abstention_combined']['coverage']:.3f} (in-scope "
            f"{r['abstention_combined']['in_scope_coverage']:.3f}, OOS recall "
            f"{r['abstention_combined']['oos_recall']:.3f}) | ≤ 0.02 | "
            f"{'yes' if r['abstention_combined']['risk'] <= 0.02 else 'no'} | |",
            "| OOS recall / in-scope accuracy (policy) | test + oos_test | "
            f"{r['abstention_combined']['oos_recall']:.3f} / {r['test_accuracy']:.4f} | ≥ 0.75 / ≥ 0.94 | "
            f"{'yes' if r['abstention_combined']['oos_recall'] >= 0.75 and r['test_accuracy'] >= 0.94 else 'no'} | |",
            "| cost: energy / Mahalanobis / Laplace | × one deterministic pass | "
            f"{r['methods']['energy']['cost_ratio']:.3f} / {r['methods']['mahalanobis']['cost_ratio']:.3f} / "
            f"{r['methods']['laplace']['cost_ratio']:.3f} | ≤ 1.1 (energy, Mahalanobis) | "
            f"{'yes' if max(r['methods']['energy']['cost_ratio'], r['methods']['mahalanobis']['cost_ratio']) <= 1.1 else 'no'} | |",  # noqa: E501
            f"| OOD AUROC: Laplace (entropy) | oos_test | {r['ood_auroc']['laplace']:.4f} | report | | |",
            "| MC dropout K=10 cost: naive / efficient (head only) | × one deterministic pass | "
            f"{r['mc_dropout_naive']['cost_ratio']:.2f} / {r['mc_dropout_efficient_head']['cost_ratio']:.2f} | "
            f"efficient ≤ 2.0 | {'yes' if r['mc_dropout_efficient_head']['cost_ratio'] <= 2.0 else 'no'} | |",
            "| MC dropout OOD AUROC (entropy): naive / efficient | oos_test | "
            f"{r['mc_dropout_naive']['ood_auroc']['entropy']:.4f} / "
            f"{r['mc_dropout_efficient_head']['ood_auroc']['entropy']:.4f} | drop ≤ 0.01 | "
            f"{'yes' if r['mc_dropout_naive']['ood_auroc']['entropy'] - r['mc_dropout_efficient_head']['ood_auroc']['entropy'] <= 0.01 else 'no'} | |",  # noqa: E501
        ]
    path = RESULTS / "spans.json"
    if path.is_file():
        r = json.loads(path.read_text())
        a = r["abstention"]
        lines += [
            "| CoNLL-2003 span ECE: raw product / after word temperature | test | "
            f"{r['spans']['product']['ece']:.4f} / {r['calibrated']['span_ece']:.4f} | report | | |",
            "| CoNLL-2003 wrong-span AUROC of span confidence (product / min / mean) | test | "
            f"{r['spans']['product']['auroc']:.4f} / {r['spans']['min']['auroc']:.4f} / "
            f"{r['spans']['mean']['auroc']:.4f} | report | | |",
            f"| CoNLL-2003 kept spans at a {r['target']:.0%} target (δ 0.05); testb is shifted from dev (F1 "
            f"{r['f1']:.3f} vs {r['validation']['f1']:.3f}) | test | "
            + (
                f"error {a['risk']:.4f} at coverage {a['coverage']:.3f}"
                if a["risk"] is not None
                else "none kept (no threshold certified)"
            )
            + f" | ≤ {r['target']} | {'yes' if a['risk'] is not None and a['risk'] <= r['target'] else 'no'} | |",
            "| CoNLL-2003 kept spans, held-out dev half (exchangeable with calibration) | validation | "
            f"error {r['validation']['abstention']['risk']:.4f} at coverage "
            f"{r['validation']['abstention']['coverage']:.3f}; span ECE "
            f"{r['validation']['calibrated']['span_ece']:.4f} | ≤ {r['target']} | "
            f"{'yes' if r['validation']['abstention']['risk'] <= r['target'] else 'no'} | |",
        ]
    path = RESULTS / "ensemble.json"
    if path.is_file():
        r = json.loads(path.read_text())
        m, e = r["member"], r["ensemble"]
        lines.append(
            f"| SST-2 deep ensemble ({r['members']}) vs one member: ECE / NLL / cost | test | "
            f"{e['ece']:.4f} / {e['nll']:.3f} / {e['cost_ratio']:.2f}× (member {m['ece']:.4f} / {m['nll']:.3f}) | "
            "report | | |"
        )
    path = RESULTS / "distill.json"
    if path.is_file():
        lines += distill_rows(json.loads(path.read_text()))
    path = RESULTS / "risk_bounds.json"
    if path.is_file():
        r = json.loads(path.read_text())
        mix, old, small, need = (
            r["mixture_10pct"]["new"],
            r["mixture_10pct"]["previous_bound"],
            r["small_calibration_500"],
            r["ood_needed_for_18pct"],
        )
        ok = mix["coverage"] >= 0.75 and mix["in_scope_coverage"] >= 0.85 and mix["realised_risk"] <= 0.02
        lines += [
            "| CLINC150 2% bound, 10% out-of-scope share (test + oos_test at 10%) | coverage / in-scope / realised | "
            f"{mix['coverage']:.1%} / {mix['in_scope_coverage']:.1%} / {mix['realised_risk']:.2%} (previous bound "
            f"{old['coverage']:.1%} / {old['in_scope_coverage']:.1%}) | ≥ 75% / ≥ 85% / ≤ 2% | "
            f"{'yes' if ok else 'no'} | |",
            "| smallest out-of-scope calibration set certifying an 18% share at 2% (seeded subsets) | texts | "
            f"{need['smallest_always_certified']} | ≤ 400 | "
            f"{'yes' if need['smallest_always_certified'] and need['smallest_always_certified'] <= 400 else 'no'} | |",
            f"| 2% target from 500 calibration texts (CLINC150, {small['draws']} draws) | coverage median / min; "
            f"worst realised | {small['coverage_median']:.1%} / {small['coverage_min']:.1%}; "
            f"{small['realised_risk_max']:.2%} | ≥ 50%, ≤ 2% | "
            f"{'yes' if small['coverage_min'] >= 0.5 and small['realised_risk_max'] <= 0.02 else 'no'} | |",
        ]
    path = RESULTS / "shift.json"
    if path.is_file():
        r = json.loads(path.read_text())
        m, t, d = r["median"], r["median"]["target"], r["median"]["in_domain"]
        risk = f"{t['risk']:.1%}" if t["risk"] is not None else "none certified"
        risk_in = f"{d['risk']:.1%}" if d["risk"] is not None else "none certified"
        advice = m.get("target_advice")
        if t["risk"] is None and advice and advice.get("target_risk") is not None:  # what it can certify instead
            risk += f" (certifies {advice['target_risk']:.1%} at {advice['coverage']:.0%} coverage)"
        lines += [
            f"| SST-2 → CR, calibrated with unlabelled CR texts (half; median of {r['splits']} halvings), on the "
            f"other half | ECE; NLL | {t['ece']:.2%}; {t['nll']:.4f} (in-domain calibration {d['ece']:.2%}; "
            f"{d['nll']:.4f}, raw ECE {m['raw_ece']:.2%}, CR-label temperature {m['oracle_temperature_ece']:.2%}; "
            f"{m['oracle_temperature_nll']:.4f}, perturbation {m['perturbation_ece']:.2%}; "
            f"{m['perturbation_nll']:.4f}) | "
            f"≤ 3% | {'yes' if t['ece'] <= 0.03 else 'no'} | |",
            f"| 90% conformal sets on that CR half, weighted vs unweighted | coverage | {t['set_coverage']:.1%} vs "
            f"{d['set_coverage']:.1%} | 90% ± 2 | {'yes' if abs(t['set_coverage'] - 0.9) <= 0.02 else 'no'} | |",
            f"| abstention at {r['target_risk']:.0%} on that CR half, target vs in-domain calibration | realised risk "
            f"/ coverage | {risk} / {t['coverage']:.1%} vs {risk_in} / {d['coverage']:.1%} | "
            f"≤ {r['target_risk']:.0%} | "
            f"{'yes' if t['risk'] is not None and t['risk'] <= r['target_risk'] else 'no'} | |",
        ]
    path = RESULTS / "shift_density.json"
    if path.is_file():
        r = json.loads(path.read_text())
        m = r["median"]
        lines.append(
            "| the same CR halves B: density-aware calibration (Tomani et al. 2023; k-NN distances in features and "
            f"logits, fitted on the calibration split) clean / with perturbed copies, vs the in-domain temperature | "
            f"ECE (NLL), median of {r['splits']} | {m['dac']['ece']:.2%} ({m['dac']['nll']:.3f}) / "
            f"{m['dac_perturbed']['ece']:.2%} ({m['dac_perturbed']['nll']:.3f}) vs {m['temperature']['ece']:.2%} "
            f"({m['temperature']['nll']:.3f}) | – | report | |"
        )
    path = RESULTS / "attack_caught.json"
    if path.is_file():
        r = json.loads(path.read_text())

        def pct(v: float | None) -> str:
            return "–" if v is None else f"{v:.1%}"

        def cell(name: str, v: dict) -> str:
            if v["threshold"] is None:  # nothing certified: the policy abstains on all, "caught" would be trivial
                return (
                    f"{name}: certifies nothing at {r['target_risk']:.0%} (abstains on every input), after-attack "
                    f"accuracy {pct(v['after_attack_accuracy'])}"
                )
            return (
                f"{name}: caught {pct(v['caught'])}, answered error {pct(v['answered_error_clean'])} → "
                f"{pct(v['answered_error_after_attack'])} (answered {v['answered_clean']} → "
                f"{v['answered_after_attack']} of {v['n']}), after-attack accuracy {pct(v['after_attack_accuracy'])}"
            )

        cells = "; ".join(cell(name, v) for name, v in r["runs"].items())
        speed = "; ".join(f"{name} {v['examples_per_s']:.2f}" for name, v in r["runs"].items() if v["examples_per_s"])
        lines += [
            f"| SST-2 greedy attack ({r['max_examples']} test sentences) read through the calibrated policy "
            f"(target {r['target_risk']:.0%}): successful attacks withheld, error on answered before → after | "
            f"caught; answered error | {cells} | report | | |",
            f"| greedy attack throughput, same runs (clean pass included) | attacked examples/s | {speed} | report "
            "| | |",
        ]
    path = RESULTS / "spans_shift.json"
    if path.is_file():
        r = json.loads(path.read_text())
        t, d = r["median"]["target"], r["median"]["in_domain"]
        lines.append(
            f"| CoNLL-2003 kept spans at {r['target_risk']:.0%}, calibrated with unlabelled testb sentences (half; "
            f"{r['splits']} halvings), on the other half | realised risk median (worst) / coverage | "
            f"{t['risk']:.2%} ({r['worst_target_risk']:.2%}) / {t['coverage']:.1%} vs in-domain calibration "
            f"{d['risk']:.2%} / {d['coverage']:.1%} | ≤ {r['target_risk']:.0%} | "
            f"{'yes' if r['worst_target_risk'] <= r['target_risk'] else 'no'} | |"
        )
        if "labelled_target" in r:  # what labels buy, beside the weights
            cells = "; ".join(
                f"{n}: {v['risk_median']:.2%} ({v['risk_worst']:.2%}) / {v['coverage_median']:.1%}"
                for n, v in r["labelled_target"].items()
            )
            lines.append(
                "| the same threshold calibrated on N labelled testb sentences (half A) instead | N: realised median "
                f"(worst) / coverage | {cells} | ≤ {r['target_risk']:.0%} | report | |"
            )
    path = RESULTS / "service.json"
    if path.is_file():
        r = json.loads(path.read_text())
        mb, one = r["microbatched"], r["one_at_a_time"]
        lines += [
            f"| service /v1/predict, {r['concurrency']} clients × {r['seconds']:g} s (CLINC150 run) | "
            f"errors; p50 / p99 | {mb['errors']}; {mb['p50_ms']:.0f} / {mb['p99_ms']:.0f} ms | 0 errors | "
            f"{'yes' if r['zero_errors'] else 'no'} | |",
            "| micro-batching throughput / one request at a time | ratio | "
            f"{r['microbatching_speedup']:.2f}× ({mb['requests_per_s']:.0f} vs {one['requests_per_s']:.0f} req/s) | "
            f"≥ 3× | {'yes' if r['microbatching_speedup'] >= 3 else 'no'} | |",
            f"| predictions/s through HTTP at batch {r['batch']} / Python API | ratio | "
            f"{r['http_vs_python_api']:.2f} | ≥ 0.70 | {'yes' if r['http_vs_python_api'] >= 0.7 else 'no'} | |",
        ]
        if r.get("fuzz"):
            f = r["fuzz"]
            lines.append(
                f"| fuzzing /v1/predict with malformed bodies | 5xx of {f['requests']} | {f['server_errors']} | 0 | "
                f"{'yes' if f['server_errors'] == 0 else 'no'} | |"
            )
    lines += _bench_rows("service_fire", "benchmarks.service_fire")
    lines += _bench_rows("robust_transfer", "benchmarks.robust_transfer")
    lines += _bench_rows("certify", "benchmarks.robust_transfer", "certify_rows")
    lines += _bench_rows("cr_target", "benchmarks.robust_transfer", "cr_target_rows")
    path = RESULTS / "robustness.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for name, a in r["attacks"].items():
            lines.append(
                f"| SST-2 ERM under the {name} attack (≤ 20% words, sim ≥ 0.8), {r['max_examples']} test sentences | "
                f"clean → after-attack accuracy | {a['clean_accuracy']:.4f} → {a['after_attack_accuracy']:.4f} "
                f"(success {a['success_rate']:.2f}, {a['mean_queries']:.0f} queries, {a['examples_per_s']:.2f} ex/s) | "
                "report | | |"
            )
        lines.append(
            f"| SST-2 ERM on CR (shifted domain) | accuracy; ECE | {r['cr']['accuracy']:.4f} (in-domain "
            f"{r['in_domain']['accuracy']:.4f}); {r['cr']['ece']:.4f} (in-domain {r['in_domain']['ece']:.4f}) | "
            "report | | |"
        )
        g = r["attacks"]["greedy"]["seconds"]
        lines.append(
            f"| greedy attack on {r['max_examples']} SST-2 test sentences, 2 cores | wall time | "
            f"{g / 60:.1f} min (all three attacks {r['attack_seconds'] / 60:.1f} min) | < 10 min | "
            f"{'yes' if g < 600 else 'no'} | |"
        )
    path = RESULTS / "ner_attack.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for name, a in r["attacks"].items():
            lines.append(
                f"| CoNLL-2003 under the {name} attack, context words only (≤ 20% words, sim ≥ 0.8), "
                f"{r['max_examples']} test sentences | sentence accuracy; span F1; span errors | "
                f"{a['clean_accuracy']:.3f} → {a['after_attack_accuracy']:.3f}; {a['clean_span_f1']:.3f} → "
                f"{a['after_attack_span_f1']:.3f}; {a['clean_span_errors']} → {a['after_attack_span_errors']} "
                f"({a['mean_queries']:.1f} queries per attacked sentence) | report | | |"
            )
    path = RESULTS / "ner_compare.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for row in r["rows"]:
            a = row["attack"]
            lines.append(
                f"| CoNLL-2003 {row['run']} ({row['recipe']}): span F1; span ECE; after charswap / greedy span F1 "
                f"({r['max_examples']} test sentences); s per step | test | "
                f"{row['span_f1']:.4f}; {row['span_ece']:.4f}; {a['charswap']['after_attack_span_f1']:.4f} / "
                f"{a['greedy']['after_attack_span_f1']:.4f}; {row['training']['seconds_per_step']:.2f} | report | | |"
            )
    path = RESULTS / "robust_compare.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for row in r["rows"]:
            name = Path(row["path"]).name
            g, cr, t = row["attack"]["greedy"], row["shift"]["cr"], row["training"]
            v = r["verdicts"].get(name)
            lines.append(
                f"| SST-2 {name} ({row.get('recipe', row['objective'])}): clean → greedy after-attack; CR accuracy / "
                f"ECE; s per step | test ({r['max_examples']} attacked) | "
                f"{row['accuracy']:.4f} → {g['after_attack_accuracy']:.4f}; {cr['accuracy']:.4f} / {cr['ece']:.4f}; "
                f"{t['seconds_per_step']:.2f}"
                + (
                    f" (vs ERM: after attack {v['after_attack_gain'] * 100:+.1f} pts, clean "
                    f"{v['clean_change'] * 100:+.1f} pts, CR ECE {v['cr_ece_change']:+.4f})"
                    if v
                    else ""
                )
                + " | "
                + ("≥ ERM + 0.15 after attack, clean ≥ ERM − 0.015, CR ECE ≤ ERM" if v else "(ERM: the reference)")
                + f" | {('yes' if v['met'] else 'no') if v else ''} | |"
            )
        tune = r.get("tune")
        if tune:
            rows_ = "; ".join(
                f"{t['value']:g}{' (chosen)' if t['run'] == tune['best_run'] else ''}: {t['validation']:.4f} / "
                f"{t['score']:.4f}"
                for t in tune["rows"]
            )
            lines.append(
                f"| SST-2 {r['tuned']}: {tune['key']} of the random-edit recipe chosen on validation "
                f"({tune['criterion']}, clean within {tune['clean_tolerance']}) | "
                f"validation clean / after greedy per value | {rows_} | chosen on validation, never test | | |"
            )
        for name, attacks in r.get("other_attacks", {}).items():
            cells = "; ".join(
                f"{a} {f['clean_accuracy']:.3f} → {f['after_attack_accuracy']:.3f}" for a, f in attacks.items()
            )
            lines.append(
                f"| SST-2 {name} under the other searches ({r['max_examples']} test sentences) | "
                f"clean → after-attack accuracy | {cells} | report | | |"
            )
    path = RESULTS / "explain.json"
    if path.is_file():
        r = json.loads(path.read_text())
        m, rnd = r["methods"], r["methods"]["random"]
        for name in [k for k in m if k != "random"]:
            c, s_ = m[name]["comprehensiveness"]["mean"], m[name]["sufficiency"]["mean"]
            beats = c > rnd["comprehensiveness"]["mean"] and s_ < rnd["sufficiency"]["mean"]
            lines.append(
                f"| SST-2 explanations, {name}: comprehensiveness / sufficiency (random "
                f"{rnd['comprehensiveness']['mean']:.3f} / {rnd['sufficiency']['mean']:.3f}), {r['n']} test sentences "
                f"| ERASER, bins 1-50% | {c:.3f} / {s_:.3f}; {m[name]['evaluations']['mean']:.0f} model evaluations, "
                f"{m[name]['seconds']['median']:.2f} s median (this run shared the 2 cores with a training job) | "
                f"beats random | {'yes' if beats else 'no'} | |"
            )
        lines.append(
            f"| integrated gradients, 32 steps in one batched pass, 2 cores, alone ({r['ig_timing']['n']} sentences, "
            f"{r['ig_timing']['mean_words']:.0f} words on average) | median s per sentence | "
            f"{r['ig_median_seconds']:.3f} (p90 {r['ig_timing']['p90_seconds']:.3f}) | < 0.5 | "
            f"{'yes' if r['ig_under_half_a_second'] else 'no'} | |"
        )
        u = r["uncertainty"]
        shares = " / ".join(
            f"{k} {v['lower_than_random']:.2f}" for k, v in u["methods"].items() if v["lower_than_random"] is not None
        )
        lines.append(
            f"| deleting the top-{u['k']} uncertainty words lowers entropy more than {u['k']} random words, {u['n']} "
            f"inputs the policy does not answer | share of inputs | {shares} | most (> 0.5) | "
            f"{'yes' if u['methods'] and max((v['lower_than_random'] or 0) for v in u['methods'].values()) > 0.5 else 'no'} | |"  # noqa: E501
        )
        st = r["stability"]
        lines.append(
            f"| LIME stability between two seeds (Spearman; top-3 overlap): {r['options']['lime']['samples']} samples "
            f"({st['lime']['n']} sentences) / {r['lime_default']['samples']}, its default ({r['lime_default']['n']} "
            "sentences); SHAP's partition explainer does not sample | test | "
            f"{st['lime']['spearman']:.3f}; {st['lime']['top_k_overlap']:.2f} / "
            f"{r['lime_default']['stability']['spearman']:.3f}; {r['lime_default']['stability']['top_k_overlap']:.2f} "
            "| report | | |"
        )
    path = RESULTS / "generate.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for name, g in r["sets"].items():
            acc = " / ".join(f"{k} {v:.3f}" for k, v in g["accuracy"].items())
            lines.append(
                f"| {name}: SmolLM2-135M-Instruct greedy accuracy, {g['n']} questions | contains / exact / F1 ≥ 0.5 | "
                f"{acc} | report | | |"
            )
            est = g["estimators"]
            ranked = sorted((e for e in est if "auroc" in est[e]), key=lambda e: -est[e]["auroc"])
            cells = "; ".join(
                f"{e} {est[e]['auroc']:.3f} [{est[e]['auroc_ci'][0]:.3f}, {est[e]['auroc_ci'][1]:.3f}] PRR "
                f"{est[e]['prr']:.3f}"
                for e in ranked
            )
            lines.append(
                f"| {name}: wrong-answer AUROC [95% bootstrap] and PRR per estimator, K = {r['samples']}, errors by "
                f"{g['rule']} | AUROC | {cells} | report | | |"
            )
            if "best" in g:  # the target is set on XQuAD; NQ-open (few right answers) is reported
                met = g["best_minus_msp"] >= 0.05 and g["best_interval_clear_of_half"]
                target, verdict = (
                    ("≥ +0.05, clear of 0.5", "yes" if met else "no") if name == "xquad" else ("report (noisy)", "")
                )
                lines.append(
                    f"| {name}: best estimator ({g['best']}) − maximum sequence probability | AUROC | "
                    f"{g['best_minus_msp']:+.3f} (interval clear of 0.5: "
                    f"{'yes' if g['best_interval_clear_of_half'] else 'no'}) | {target} | {verdict} | |"
                )
            pg = g.get("polygraph")
            if pg and "pairs" in pg:
                cells = "; ".join(
                    f"{k} {v['caveat_auroc']:.3f} vs {v['polygraph_auroc']:.3f}" for k, v in pg["pairs"].items()
                )
                worst = max(abs(v["difference"]) for v in pg["pairs"].values())
                lines.append(
                    f"| {name}: caveat vs lm-polygraph estimators on the same samples | AUROC | {cells} | "
                    f"within 0.01 | {'yes' if worst <= 0.01 else 'no'} | |"
                )
        t = r["throughput"]
        lines.append(
            f"| greedy + {t['samples']} samples: {t['samples'] + 1} separate generate calls / one batched call "
            f"({t['n']} XQuAD questions) | time ratio | {t['ratio_separate_over_batched']:.2f}× "
            f"({t['separate_median_s']:.1f} s / {t['batched_median_s']:.1f} s) | report | | |"
        )
        c = r.get("cost")
        if c and c.get("polygraph") and "seconds_per_question" in c["polygraph"]:
            p = c["polygraph"]
            lines.append(
                "| cost per question, same 5 estimators (MSP, mean NLL, token entropy, lexical similarity, P(True)), "
                f"{c['n']} questions: caveat / lm-polygraph | seconds; generate calls | "
                f"{c['caveat_seconds_per_question']:.1f} / {p['seconds_per_question']:.1f}; "
                f"{c['caveat_generate_calls_per_question']:.0f} / {p['generate_calls_per_question']:.0f} | "
                "caveat ≤ lm-polygraph | "
                f"{'yes' if c['caveat_seconds_per_question'] <= p['seconds_per_question'] else 'no'} | |"
            )
    lines += _bench_rows("generate_single", "benchmarks.generate_single")
    lines += _bench_rows("generate_tune", "benchmarks.generate_tune")
    lines += _bench_rows("generate_summaries", "benchmarks.generate_summaries")
    lines += _bench_rows("risk_feasibility", "benchmarks.risk_feasibility")
    path = RESULTS / "onnx.json"
    if path.is_file():
        lines += onnx_rows(json.loads(path.read_text()))
    path = RESULTS / "lora_sst2.json"
    if path.is_file():
        lines += lora_rows(json.loads(path.read_text()))
    lines += _bench_rows("laplace_lora", "benchmarks.llm", "laplace_sst2_rows")
    path = RESULTS / "lora_clinc150.json"
    if path.is_file():
        lines += lora_clinc_rows(json.loads(path.read_text()))
    lines += _bench_rows("laplace_lora_clinc150", "benchmarks.llm", "laplace_clinc_rows")
    lines += _bench_rows("semeval_caveats", "benchmarks.relation")
    path = RESULTS / "conll2003.json"
    if path.is_file():
        per = json.loads(path.read_text())["test"]["per_type"]
        lines += [
            "",
            "CoNLL-2003 test, per type (strict span F1):",
            "",
            "| type | precision | recall | f1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {t} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |"
            for t, v in per.items()
        ]
    return "\n".join(lines)


def lora_rows(r: dict) -> list[str]:
    """Table rows of the ``lora_sst2`` benchmark (benchmarks/llm.py)."""
    acc, ece, share = r["accuracy"], r["ece_calibrated"], r["parameters"]["share"]
    cost = r["step_cost"]
    return [
        f"| SST-2, SmolLM2-135M + LoRA r 8 ({r['train_steps']} steps) | test accuracy | {acc:.4f} | ≥ 0.88 | "
        f"{'yes' if acc >= 0.88 else 'no'} | {r['train_seconds'] / 60:.1f} min |",
        f"| SST-2, SmolLM2-135M + LoRA: ECE after calibration{_calibrated_on(r)} | test | {ece:.4f} (raw "
        f"{r['ece_raw']:.4f}{_noise(r.get('ece_noise_calibrated'))}) | ≤ 0.02 | {'yes' if ece <= 0.02 else 'no'} | |",
        *_held_out_rows(r.get("temperature_by_held_out_set")),
        f"| SST-2, SmolLM2-135M + LoRA: trainable parameters | share | {share:.4f} "
        f"({r['parameters']['trainable']:,}) | ≤ 0.02 | {'yes' if share <= 0.02 else 'no'} | |",
        "| cost per step, SmolLM2-135M LoRA / MiniLM full fine-tune (batch 16) | ratio | "
        f"{cost['lora_over_minilm']:.1f}× ({cost['median_seconds_per_step']['smollm2_lora']:.2f} s) | report | | |",
    ]


def _held_out_rows(by_set: dict | None) -> list[str]:
    if not by_set:
        return []
    what = {"calibration": "dev file (calibrates the run)", "validation": "carved from train"}
    cells = "; ".join(
        f"{what.get(k, k)}: {v['n']} sentences, accuracy {v['accuracy']:.3f}, T {v['temperature']:.2f} → "
        f"test ECE {v['test_ece']:.4f}, NLL {v['test_nll']:.4f}"
        for k, v in by_set.items()
    )
    row = "SST-2 LoRA: the temperature each labelled held-out set fits, applied to test"
    return [f"| {row} | test | {cells} | report | | |"]


def _calibrated_on(r: dict) -> str:
    c = r.get("calibration_summary") or {}
    return f" (temperature {c['temperature']:.2f} fitted on {c['n']} sentences)" if "n" in c else ""


def _noise(noise: dict | None) -> str:
    """What a perfectly calibrated model with these confidences shows on this many inputs."""
    return "" if not noise else f"; a calibrated model's noise: median {noise['median']:.4f}, 95% {noise['upper']:.4f}"


def lora_clinc_rows(r: dict) -> list[str]:
    """Table rows of the ``lora_clinc150`` benchmark (benchmarks/llm.py)."""
    one, ens, la, auroc, c = r["one_adapter"], r["ensemble"], r["laplace_lora"], r["ood_auroc"], r["checks"]
    best, top = r["best_single_adapter_method"], r.get("best_method", r["best_single_adapter_method"])
    yes = {True: "yes", False: "no"}
    return [
        f"| CLINC150, SmolLM2-135M + LoRA r 8 ({r['train_steps']} steps, 1 epoch) | in-scope test accuracy | "
        f"{r['in_scope_accuracy']:.4f} | ≥ 0.93 | {yes[c['in_scope_accuracy_ge_0.93']]} | "
        f"{r['train_seconds_member0'] / 60:.0f} min |",
        f"| CLINC150 LoRA: OOS AUROC, best method ({top}); best with one adapter ({best}) | oos_test | "
        f"{auroc[top]:.4f}; {auroc[best]:.4f} | ≥ 0.97 | {yes[c['best_ood_auroc_ge_0.97']]} | |",
        f"| CLINC150 LoRA ensemble ({r['members']} adapters, one base) vs one adapter | NLL / ECE / OOS AUROC | "
        f"{ens['nll']:.4f} / {ens['ece']:.4f} / {auroc['ensemble']:.4f} vs {one['nll']:.4f} / {one['ece']:.4f} / "
        f"{auroc['least_confidence']:.4f} | better, AUROC +0.005 | "
        f"{yes[c['ensemble_nll_better'] and c['ensemble_ece_better'] and c['ensemble_auroc_ge_one_plus_0.005']]} | |",
        f"| CLINC150 LoRA ensemble: inference cost; memory (parameters, peak RSS) vs one adapter | ratio | "
        f"{ens['cost_ratio']:.2f}×; {r['memory']['parameter_ratio']:.3f}×, {r['memory']['rss_ratio']:.2f}× | "
        f"≤ 4.5×; ≤ 1.2× | {yes[c['ensemble_cost_le_4.5'] and c['ensemble_memory_le_1.2']]} | |",
    ] + (
        []
        if la is None
        else [
            f"| CLINC150 LoRA: Laplace-LoRA (prior tuned on calibration) vs temperature scaling | NLL; OOS AUROC | "
            f"{la['nll']:.4f} vs {r['calibrated']['nll']:.4f}; {auroc['laplace_lora']:.4f} | NLL no worse | "
            f"{yes[c['laplace_nll_no_worse_than_temperature']]} | |"
        ]
    )


def onnx_rows(r: dict) -> list[str]:
    """Table rows of the ``onnx`` benchmark (benchmarks/onnx_export.py)."""
    t, src, q = r["throughput"], r["source"], r["int8"]
    rates = " / ".join(f"{t[k]['texts_per_s']:.0f}" for k in ("pytorch_fp32", "ort_fp32", "ort_int8"))
    mb = " / ".join(f"{r['bytes'][k] / 2**20:.0f}" for k in ("pytorch_fp32", "ort_fp32", "ort_int8"))
    ece = (
        f"{q['ece_calibrated']:.4f} (PyTorch {src['ece_calibrated']:.4f})" if src["ece_calibrated"] is not None else ""
    )
    return [
        f"| CLINC150 MiniLM, batch {r['batch']}, {r['threads']} threads: PyTorch fp32 / ORT fp32 / ORT int8 "
        f"({r['n_texts']} test texts, median of {r['repeats']} interleaved passes) | texts/s; weights MB | {rates} "
        f"(int8 {t['ort_int8']['speedup']:.2f}× PyTorch); {mb} | report | | |",
        f"| CLINC150 ORT int8 vs PyTorch fp32, int8 re-calibrated on its own calibration split | test accuracy; "
        f"ECE after temperature | {q['accuracy']:.4f} vs {src['accuracy']:.4f} ({r['accuracy_change'] * 100:+.2f} "
        f"pts); {ece} | report | | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        default=",".join(default_names()),
        help="comma-separated benchmarks (default: those of make bench); every name: benchmarks/benches.py",
    )
    parser.add_argument("--quick", action="store_true", help="a few steps each: checks the harness, not the figures")
    parser.add_argument("--no-reuse", action="store_true")
    parser.add_argument(
        "--robust", action="store_true", help="semeval_caveats: also train the robust recipe and report its gain"
    )
    args = parser.parse_args()
    names = args.only.split(",")
    error = unknown(names)
    if error:  # before anything runs: a typo in the last name must not cost the hour the first ones take
        raise SystemExit(error)
    data_root = Path(os.environ.get("CAVEAT_DATA", ROOT.parent / "shared" / "data")).resolve()
    if not data_root.is_dir():
        raise SystemExit(
            f"data not found at {data_root}; set CAVEAT_DATA to the folder holding clinc150/, conll2003/, sst2/"
        )
    context = Context(data_root, quick=args.quick, reuse=not args.no_reuse, robust=args.robust)
    results = RESULTS if not args.quick else WORK / "quick-results"
    for name in names:
        start = time.perf_counter()
        record = BENCHES[name].run(context)
        record["command"] = "make bench" if not args.quick else "python -m benchmarks.run --quick"
        record["wall_seconds"] = round(time.perf_counter() - start, 1)
        write_json_atomic(results / f"{name}.json", record)
        print(json.dumps({k: v for k, v in record.items() if k != "test"}), flush=True)
    if not args.quick:
        write_tables()


def write_tables() -> None:
    """Rewrite benchmarks/results/README.md and the README table from the results on disk."""
    md = table()
    write_text_atomic(
        RESULTS / "README.md",
        "# Benchmark results\n\nReproduce with `make bench` (CPU, 2 cores). Train times are wall-clock and only\n"
        "for orientation (the machine is shared); cost ratios are medians of interleaved repeats.\n\n" + md + "\n",
    )
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    text = re.sub(
        r"<!-- bench:start -->.*<!-- bench:end -->", f"<!-- bench:start -->\n{md}\n<!-- bench:end -->", text, flags=re.S
    )
    write_text_atomic(readme, text)


if __name__ == "__main__":
    main()
