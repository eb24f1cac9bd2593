"""The planted scores of benchmarks/risk_feasibility.py have the AUROC asked for, and certified coverage grows
with it from nothing (a score that cannot rank, at a base error above the target) upwards."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.risk_feasibility import certified_coverage, planted


def test_planted_scores_have_the_auroc_asked_for():
    for auroc in (0.6, 0.775, 0.9):
        scores, errors = planted(np.random.default_rng(1), 40_000, 0.66, auroc)
        assert abs(errors.mean() - 0.66) < 0.01
        assert abs(roc_auc_score(errors, scores) - auroc) < 0.01


def test_certified_coverage_is_nothing_without_ranking_and_grows_with_the_auroc():
    none = certified_coverage(0.5, draws=20, fresh=2_000)
    assert np.median(none) == 0 and none.mean() < 0.02  # every answered set errs 66% of the time: above 0.5
    medians = [np.median(certified_coverage(a, draws=20, fresh=2_000, seed=2)) for a in (0.7, 0.85, 0.97)]
    assert medians[0] < medians[1] < medians[2]
    # a perfect ranking answers the 34% right ones plus as many wrong ones again at risk 0.5: at most 68%
    assert 0.4 < medians[2] <= 0.68
