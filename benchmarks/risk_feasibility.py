"""What AUROC a generate-calibrate target needs: certified coverage on planted binormal scores.

Issue 20 asks generate-calibrate to certify >= 30% coverage at risk 0.5 (delta 0.05) from 200 calibration
questions at XQuAD's 66% base error. Whether that is reachable depends on how well the score ranks the
answers, so this bench plants scores of a known AUROC (binormal: wrong answers' scores ~ N(mu, 1), right ones'
~ N(0, 1), mu = sqrt(2) * Phi^-1(AUROC)), calibrates ``GenerationPolicy`` exactly as the command does, and
measures the coverage the certified threshold gives on 20,000 fresh planted questions. It is an ideal case:
real scores are not binormal, and SmolLM2-135M's best (AUROC 0.775 on XQuAD) certified nothing in most splits.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

AUROCS = (0.70, 0.75, 0.775, 0.80, 0.85, 0.90)
SETTING = {"n": 200, "base_error": 0.66, "target_risk": 0.5, "delta": 0.05, "coverage_wanted": 0.30}


def planted(rng: np.random.Generator, n: int, base_error: float, auroc: float) -> tuple[np.ndarray, np.ndarray]:
    """(scores, errors) of ``n`` questions: errors ~ Bernoulli(base_error), scores binormal with this AUROC."""
    errors = rng.uniform(size=n) < base_error
    return rng.normal(size=n) + np.sqrt(2) * norm.ppf(auroc) * errors, errors


def certified_coverage(auroc: float, *, draws: int, seed: int = 0, fresh: int = 20_000, **setting) -> np.ndarray:
    """(draws,) coverage on fresh questions of the threshold certified from ``setting['n']`` planted ones (0 when
    nothing is certified)."""
    from caveat.generate.policy import GenerationPolicy
    from caveat.generate.sampling import SamplingConfig

    s = {**SETTING, **setting}
    rng = np.random.default_rng(seed)
    out = np.zeros(draws)
    for i in range(draws):
        scores, errors = planted(rng, s["n"], s["base_error"], auroc)
        policy = GenerationPolicy.fit(
            scores,
            errors,
            lm="planted",
            sampling=SamplingConfig(),
            estimator="planted",
            rule="contains",
            target_risk=s["target_risk"],
            delta=s["delta"],
            allow_empty=True,
        )
        new_scores, _ = planted(rng, fresh, s["base_error"], auroc)
        out[i] = policy.risk.decide(new_scores).mean()
    return out


def bench_risk_feasibility(*, quick: bool = False) -> dict:
    draws = 20 if quick else 200
    by_auroc = {}
    for auroc in AUROCS:
        cov = certified_coverage(auroc, draws=draws)
        by_auroc[f"{auroc:g}"] = {
            "median_coverage": float(np.median(cov)),
            "share_reaching_wanted": float((cov >= SETTING["coverage_wanted"]).mean()),
        }
    return {"setting": SETTING, "draws": draws, "by_auroc": by_auroc, "quick": quick}


def rows(r: dict) -> list[str]:
    s = r["setting"]
    cells = "; ".join(
        f"{a}: {v['median_coverage']:.2f} ({v['share_reaching_wanted']:.0%})" for a, v in r["by_auroc"].items()
    )
    return [
        f"| generate-calibrate on planted binormal scores, target risk {s['target_risk']}, δ {s['delta']}, "
        f"{s['n']} calibration questions at base error {s['base_error']} ({r['draws']} draws): what AUROC the "
        f"coverage target needs | AUROC: median certified coverage (share of draws ≥ {s['coverage_wanted']:.0%}) | "
        f"{cells} | report | | |"
    ]
