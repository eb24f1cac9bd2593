"""Issue 17 figures on CLINC150: risk-controlled abstention with out-of-scope traffic and on small calibration sets,
after the fallback procedure and the exact joint mixture test (decide/risk.py).

- The threshold ``caveat calibrate`` chooses with the 200 out-of-scope calibration texts (oos_train + oos_val) for
  a 10% share, on the gated scores ``fit_gate`` gives (what calibrate sees); the policy is then scored on test +
  oos_test reweighted to a 10% share (expectations over that mixture: in-scope and out-of-scope rates 90 : 10).
- The same gated scores (what the OOD and prediction-set checks let through, as ``calibrate`` sees them) give: the
  previous bound's threshold (Bonferroni over three Clopper-Pearson bounds, one fixed sequence per start) for
  comparison; 30 seeded draws of 500 calibration texts with the in-scope 2% target; and the smallest out-of-scope
  calibration set (seeded subsets of the 200) that certifies the test mixture's 18% share at 2%.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


def _gated(run_dir: Path, data_root: Path) -> dict:
    """Gated scores (``fit_gate``: what ``calibrate`` sees) and errors of the calibration, out-of-scope calibration,
    test and oos_test inputs: one pass over each."""
    from scipy.special import softmax

    from caveat.calibration.fit_text import fit_gate, predict_splits
    from caveat.data.load import load_data
    from caveat.data.resolve import ood_texts
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    run = open_run(run_dir)
    splits = functools.cache(lambda: load_data(run.config))
    predictor = Predictor.from_run(run, calibrated=False)
    passes = predict_splits(run, predictor, splits())
    gate = fit_gate(passes, alpha=0.1, conformal="lac", score="least_confidence", ood_tpr=0.95)  # calibrate's defaults
    sets = (str(data_root / "clinc150/data_full.json#oos_train"), "oos_val")
    oos_cal = [t for name in sets for t in ood_texts(run, name, splits)]
    test = splits().test
    y_test = np.array([run.labels.index(ex.label) for ex in test.examples])
    p_test = predictor.predict([ex.text for ex in test.examples])
    probs_test = softmax(gate.temperature.transform(p_test.logits[0]), -1)
    return {
        "cal": gate.scorer(passes.calibration),
        "cal_err": gate.probs.argmax(-1) != passes.y,
        "ood": gate.scorer(predictor.predict(oos_cal)),
        "test": gate.scorer(p_test),
        "test_err": probs_test.argmax(-1) != y_test,
        "oos_test": gate.scorer(predictor.predict(ood_texts(run, "oos_test", splits))),
    }


def _old_mixture(scores, errors, ood, pi, target, delta, starts=2) -> float:
    """The bound before issue 17: Bonferroni over Clopper-Pearson bounds on m, a, o at delta / (3 starts), one fixed
    sequence per start (target / 2**j), each at delta / starts."""
    from scipy.stats import beta

    d3, n, m = delta / (3 * starts), len(scores), len(ood)
    lam = np.unique(np.r_[scores, ood])
    lam = lam[np.isfinite(lam)]
    a = np.searchsorted(np.sort(scores), lam, side="right")
    cum = np.cumsum(errors[np.argsort(scores, kind="stable")])
    k = np.where(a > 0, cum[np.maximum(a - 1, 0)], 0)
    oa = np.searchsorted(np.sort(ood), lam, side="right")

    def up(x, size):
        return np.where(x >= size, 1.0, beta.ppf(1 - d3, x + 1, np.maximum(size - x, 1)))

    l_a = np.where(a <= 0, 0.0, beta.ppf(d3, np.maximum(a, 1), n - a + 1))
    bound = ((1 - pi) * up(k, n) + pi * up(oa, m)) / np.maximum((1 - pi) * l_a + pi * up(oa, m), 1e-12)
    best = ((1 - pi) * up(0 * k, n) + pi * up(0 * oa, m)) / np.maximum((1 - pi) * l_a + pi * up(0 * oa, m), 1e-12)
    keep = np.zeros(len(lam), dtype=bool)
    for j in range(starts):
        below = np.flatnonzero(best <= target / 2**j)
        if below.size:
            run = bound[below[0] :] <= target
            stop = int(np.argmin(run)) if not run.all() else len(run)
            keep[below[0] : below[0] + stop] = True
    return float(lam[np.flatnonzero(keep)[-1]]) if keep.any() else -np.inf


def _mixture_figures(g: dict, threshold: float, pi: float) -> dict:
    a, o = g["test"] <= threshold, g["oos_test"] <= threshold
    coverage = (1 - pi) * a.mean() + pi * o.mean()
    wrong = (1 - pi) * (a & g["test_err"]).mean() + pi * o.mean()
    return {
        "coverage": float(coverage),
        "in_scope_coverage": float(a.mean()),
        "oos_answered": float(o.mean()),
        "realised_risk": float(wrong / coverage) if coverage else None,
    }


def bench_risk_bounds(run_dir: Path, data_root: Path) -> dict:
    from caveat.calibration.fit_text import RISK_STARTS
    from caveat.decide.risk import RiskControlled

    pi, target, delta = 0.10, 0.02, 0.05
    g = _gated(run_dir, data_root)
    # what `caveat calibrate --ood oos_train --ood oos_val --ood-rate 0.1` chooses on these scores
    new_threshold = (
        RiskControlled(target, delta, allow_empty=True, starts=RISK_STARTS)
        .calibrate(g["cal"], g["cal_err"], ood_scores=g["ood"], ood_rate=pi)
        .threshold
    )
    old_threshold = _old_mixture(g["cal"], g["cal_err"], g["ood"], pi, target, delta)
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(30):
        idx = rng.choice(len(g["cal"]), 500, replace=False)
        rc = RiskControlled(target, delta, allow_empty=True, starts=2).calibrate(g["cal"][idx], g["cal_err"][idx])
        a = g["test"] <= rc.threshold
        draws.append((float(a.mean()), float(g["test_err"][a].mean()) if a.any() else 0.0))
    draws = np.array(draws)
    share = 1000 / (4500 + 1000)
    needed = {}
    for m in (25, 50, 75, 100, 125, 150, 175, 200):
        ok = []
        for _ in range(10):
            sub = rng.choice(len(g["ood"]), m, replace=False)
            rc = RiskControlled(target, delta, allow_empty=True, starts=2).calibrate(
                g["cal"], g["cal_err"], ood_scores=g["ood"][sub], ood_rate=share
            )
            ok.append(bool(np.isfinite(rc.threshold)))
        needed[m] = float(np.mean(ok))
    smallest = min((m for m, f in needed.items() if f == 1.0), default=None)
    at_share = RiskControlled(target, delta, allow_empty=True, starts=2).calibrate(
        g["cal"], g["cal_err"], ood_scores=g["ood"], ood_rate=share
    )
    return {
        "run": str(run_dir),
        "target": target,
        "delta": delta,
        "mixture_10pct": {
            "ood_rate": pi,
            "n_calibration": len(g["cal"]),
            "n_ood_calibration": len(g["ood"]),
            "threshold": new_threshold,
            "new": _mixture_figures(g, new_threshold, pi),
            "previous_bound": _mixture_figures(g, old_threshold, pi),
            "gate_pass_in_scope": float(np.isfinite(g["test"]).mean()),
        },
        "mixture_18pct": {"ood_rate": share, **_mixture_figures(g, at_share.threshold, share)},
        "small_calibration_500": {
            "draws": len(draws),
            "coverage_median": float(np.median(draws[:, 0])),
            "coverage_min": float(draws[:, 0].min()),
            "realised_risk_max": float(draws[:, 1].max()),
        },
        "ood_needed_for_18pct": {"certified_fraction_by_size": needed, "smallest_always_certified": smallest},
        "targets": {
            "coverage": 0.75,
            "in_scope_coverage": 0.85,
            "realised_risk": 0.02,
            "ood_needed": 400,
            "small_coverage": 0.5,
        },
    }
