"""Issue 3 figures on CLINC150: calibrate the clinc150 benchmark run on its calibration split, then
test + oos_test: calibration, OOD detection, conformal coverage over 100 re-splits, risk-controlled
abstention, and MC dropout (naive and efficient) with its cost relative to one deterministic pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def conformal_resplits(probs: np.ndarray, labels: np.ndarray, *, alpha: float = 0.1, n_cal: int = 1500, repeats: int = 100,
                       seed: int = 0) -> dict:
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
        out[method] = {"coverage_mean": float(np.mean(coverage)), "coverage_std": float(np.std(coverage)),
                       "set_size_mean": float(np.mean(size))}
    return {"alpha": alpha, "n_calibration": n_cal, "repeats": repeats, **out}


def bench_uncertainty(run_dir: Path) -> dict:
    from caveat.calibrate import Caveats, calibrate_run
    from caveat.data.load import load_data
    from caveat.evaluation.run import evaluate_run
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    calibration = calibrate_run(run_dir)
    base = evaluate_run(run_dir, "test", ood=["oos_test"], write=False)
    naive = evaluate_run(run_dir, "test", ood=["oos_test"], mc_samples=10, write=False)["mc_dropout"]
    efficient = evaluate_run(run_dir, "test", ood=["oos_test"], mc_samples=10, mc_top_layers=0, write=False)["mc_dropout"]

    run = open_run(run_dir)
    splits = load_data(run.config)
    examples = splits.validation.examples + splits.calibration.examples + splits.test.examples  # val + test
    predictor, caveats = Predictor.from_run(run), Caveats.from_run(run)
    probs, _ = caveats.scores(predictor.predict([ex.text for ex in examples]))
    labels = np.array([run.labels.index(ex.label) for ex in examples])
    ood = base["ood"]["oos_test"]
    best = max(ood, key=lambda k: ood[k]["auroc"])
    return {
        "run": str(run_dir),
        "calibration": {k: v for k, v in calibration.items() if k not in ("conformal", "risk")},
        "test_accuracy": base["accuracy"],
        "ece": base["ece"],
        "ece_calibrated": base["calibrated"]["ece"],
        "ood_auroc": {k: v["auroc"] for k, v in ood.items()},
        "fpr95": {k: v["fpr95"] for k, v in ood.items()},
        "best_ood_method": best,
        "conformal_single_split": base["conformal"],
        "conformal_resplits": conformal_resplits(probs, labels),
        "abstention_in_scope": base["abstention"],
        "decisions": base["decisions"],
        "mc_dropout_naive": {k: naive[k] for k in ("samples", "ece", "cost_ratio")} | {"ood_auroc": {k: v["auroc"] for k, v in naive["ood"]["oos_test"].items()}},
        "mc_dropout_efficient_head": {k: efficient[k] for k in ("samples", "top_layers", "ece", "cost_ratio")} | {"ood_auroc": {k: v["auroc"] for k, v in efficient["ood"]["oos_test"].items()}},
        "targets": {"ece_calibrated": 0.015, "ood_auroc_best": 0.97, "conformal_coverage": [0.885, 0.915],
                    "abstention_risk": 0.02, "mc_efficient_cost": 2.0, "mc_efficient_auroc_drop": 0.01},
    }
