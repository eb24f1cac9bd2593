"""Issue 3 figures on CLINC150: calibrate the clinc150 benchmark run on its calibration split, then
test + oos_test: calibration, OOD detection, conformal coverage over 100 re-splits, risk-controlled
abstention, and MC dropout (naive and efficient) with its cost relative to one deterministic pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def conformal_resplits(
    probs: np.ndarray, labels: np.ndarray, *, alpha: float = 0.1, n_cal: int = 1500, repeats: int = 100, seed: int = 0
) -> dict:
    """Mean empirical coverage and set size of each conformal score over random calibration/test re-splits."""
    from caveat.decide.conformal import ConformalClassifier

    rng = np.random.default_rng(seed)
    out = {}
    for method in ("lac", "aps", "raps"):
        coverage, size = [], []
        for _ in range(repeats):
            perm = rng.permutation(len(labels))
            cal, test = perm[:n_cal], perm[n_cal:]
            sets = ConformalClassifier(method, alpha).calibrate(probs[cal], labels[cal]).predict_set(probs[test])
            coverage.append(sets[np.arange(len(test)), labels[test]].mean())
            size.append(sets.sum(1).mean())
        out[method] = {
            "coverage_mean": float(np.mean(coverage)),
            "coverage_std": float(np.std(coverage)),
            "set_size_mean": float(np.mean(size)),
        }
    return {"alpha": alpha, "n_calibration": n_cal, "repeats": repeats, **out}


def bench_uncertainty(run_dir: Path, data_root: Path, *, repeats: int = 3) -> dict:
    """Calibrate (with out-of-scope calibration texts: oos_train + oos_val), then evaluate every method side by side;
    cheap methods' costs are medians of ``repeats`` calls, MC dropout's (naive and head-only) of one call each."""
    from caveat.calibration.run import calibrate_run
    from caveat.data.load import load_data
    from caveat.evaluation.run import evaluate_run
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    oos_train = str(data_root / "clinc150" / "data_full.json#oos_train")
    # The test mixture's share (oos_test / (test + oos_test) = 18%) cannot be certified at 2% with the
    # 200 out-of-scope calibration texts CLINC has (even none answered bounds their rate at 2% only);
    # recorded, then the bound is set for a 10% share and checked on the harder 18% test mixture.
    test_share = 1000 / (4500 + 1000)
    at_test_share = calibrate_run(run_dir, ood=[oos_train, "oos_val"], ood_rate=test_share)["risk"]
    share = 0.10
    calibration = calibrate_run(run_dir, ood=[oos_train, "oos_val"], ood_rate=share)
    cheap = "least_confidence,entropy,margin,max_logit,energy,mahalanobis,laplace"
    runs = [evaluate_run(run_dir, "test", ood=["oos_test"], methods=cheap, write=False) for _ in range(repeats)]
    base = runs[0]
    naive = evaluate_run(run_dir, "test", ood=["oos_test"], methods="least_confidence", mc_samples=10, write=False)
    efficient = evaluate_run(
        run_dir, "test", ood=["oos_test"], methods="least_confidence", mc_samples=10, mc_top_layers=0, write=False
    )
    methods = {
        name: {**row, "cost_ratio": float(np.median([r["methods"][name]["cost_ratio"] for r in runs]))}
        for name, row in base["methods"].items()
    }
    methods["mc_dropout_naive"] = naive["methods"]["mc_dropout"]
    methods["mc_dropout_efficient_head"] = efficient["methods"]["mc_dropout"]

    run = open_run(run_dir)
    splits = load_data(run.config)
    examples = splits.validation.examples + splits.calibration.examples + splits.test.examples  # val + test
    predictor = Predictor.from_run(run)  # carries the run's calibration
    probs, _ = predictor.calibration.scores(predictor.predict([ex.text for ex in examples]))
    labels = np.array([run.labels.index(ex.label) for ex in examples])
    auroc = {k: v["ood_auroc"]["oos_test"] for k, v in methods.items()}
    best = max(auroc, key=auroc.get)
    combined = base["decisions"]["oos_test"]
    return {
        "run": str(run_dir),
        "calibration": {k: v for k, v in calibration.items() if k not in ("conformal", "laplace")},
        "test_accuracy": base["accuracy"],
        "ece": base["ece"],
        "ece_calibrated": base["calibrated"]["ece"],
        "methods": methods,
        "ood_auroc": auroc,
        "fpr95": {k: v["fpr95"]["oos_test"] for k, v in methods.items()},
        "best_ood_method": best,
        "conformal_single_split": base["conformal"],
        "conformal_resplits": conformal_resplits(probs, labels),
        "abstention_in_scope": base["abstention"],
        "decisions": base["decisions"],
        "risk_at_test_share": {"ood_rate": test_share, "feasible": at_test_share["threshold"] is not None},
        "abstention_combined": {
            "target": 0.02,
            "delta": 0.05,
            "ood_rate": share,
            "test_ood_share": test_share,
            "risk": combined["combined_answered_error"],
            "coverage": combined["combined_coverage"],
            "oos_recall": combined["oos_recall"],
            "in_scope_coverage": base["decisions"]["in_scope"]["answer"] / len(splits.test.examples),
        },
        "mc_dropout_naive": {
            "samples": naive["mc_dropout"]["samples"],
            "ece": naive["mc_dropout"]["ece"],
            "cost_ratio": methods["mc_dropout_naive"]["cost_ratio"],
            "ood_auroc": {k: v["auroc"] for k, v in naive["mc_dropout"]["ood"]["oos_test"].items()},
        },
        "mc_dropout_efficient_head": {
            "samples": 10,
            "top_layers": 0,
            "ece": efficient["mc_dropout"]["ece"],
            "cost_ratio": methods["mc_dropout_efficient_head"]["cost_ratio"],
            "ood_auroc": {k: v["auroc"] for k, v in efficient["mc_dropout"]["ood"]["oos_test"].items()},
        },
        "targets": {
            "ece_calibrated": 0.015,
            "ood_auroc_best": 0.97,
            "conformal_coverage": [0.885, 0.915],
            "abstention_risk": 0.02,
            "mc_efficient_cost": 2.0,
            "mc_efficient_auroc_drop": 0.01,
            "mahalanobis_energy_cost": 1.1,
        },
    }


def bench_spans(run_dir: Path, target: float = 0.05) -> dict:
    """CoNLL-2003: calibrate span confidence on the calibration split, then the test figures."""
    from caveat.calibration.run import calibrate_run
    from caveat.evaluation.run import evaluate_run

    # 2% is not certifiable here: the most confident half of the spans is already ~98% precise
    calibration = calibrate_run(run_dir, target_risk=target, delta=0.05)
    test = evaluate_run(run_dir, "test", write=False)
    # the other half of the dev set is exchangeable with the calibration half; testb is harder (shifted)
    held_out = evaluate_run(run_dir, "validation", write=False)
    return {
        "run": str(run_dir),
        "target": target,
        "calibration": calibration,
        "validation": {
            "f1": held_out["f1"],
            "calibrated": held_out["calibrated"],
            "abstention": held_out["abstention"],
        },
        "f1": test["f1"],
        "spans": test["spans"],
        "calibrated": test["calibrated"],
        "abstention": test["abstention"],
    }


def bench_ensemble(run_dir: Path) -> dict:
    """SST-2: a 3-member deep ensemble against its first member alone (same test set, same call)."""
    from caveat.evaluation.run import evaluate_run

    test = evaluate_run(run_dir, "test", methods="least_confidence,ensemble", write=False)
    return {
        "run": str(run_dir),
        "member": test["methods"]["least_confidence"],
        "ensemble": test["methods"]["ensemble"],
        "members": test["ensemble"]["members"],
    }


def bench_robustness(run_dir: Path, data_root: Path, *, max_examples: int = 500) -> dict:
    """Issue 5 so far, on the ERM SST-2 run: the three attacks on the first ``max_examples`` test
    sentences (≤ 20% of words, similarity ≥ 0.8) and CR as a shifted domain."""
    import time

    from caveat.evaluation.run import evaluate_run
    from caveat.robustness.run import attack_run

    start = time.perf_counter()
    attacks = attack_run(run_dir, "test", "charswap,wordsub,greedy", max_examples=max_examples, write=False)
    attack_seconds = time.perf_counter() - start
    shifted = evaluate_run(run_dir, "test", shift=[f"cr={data_root / 'cr' / 'custrev.all'}"], write=False)
    cr = shifted["shift"]["cr"]
    return {
        "run": str(run_dir),
        "max_examples": max_examples,
        "attack_seconds": attack_seconds,
        "attacks": {
            k: {m: v for m, v in a.items() if m != "examples"} | {"examples": a.get("examples", [])[:3]}
            for k, a in attacks["attacks"].items()
        },
        "in_domain": {"accuracy": shifted["accuracy"], "ece": shifted["ece"]},
        "cr": {
            "n": cr["n"],
            "accuracy": cr["accuracy"],
            "ece": cr["ece"],
            "skipped": cr.get("skipped"),
            "ood_auroc": {k: v["auroc"] for k, v in cr["ood"].items()},
        },
    }
