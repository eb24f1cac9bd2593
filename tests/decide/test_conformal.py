"""Split conformal sets: coverage on planted data, the finite-sample quantile, MAPIE, staging, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.decide import CONFORMAL, ConformalClassifier
from caveat.errors import ConfigError, DataError, NotCalibratedError


def planted(n: int, concentration, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet probabilities (N, C) and labels drawn from them (a perfectly calibrated model)."""
    probs = rng.dirichlet(np.asarray(concentration, dtype=float), size=n)  # (N, C)
    u = rng.random(n)[:, None]  # (N, 1)
    labels = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)  # (N,)
    return probs, labels


METHODS = [
    ("lac", {}),
    ("aps", {}),
    ("aps", {"randomized": True}),
    ("raps", {"lam": 0.1, "k_reg": 1}),
    ("raps", {"lam": 0.1, "k_reg": 1, "randomized": True}),
]


@pytest.mark.parametrize(("method", "options"), METHODS)
def test_marginal_coverage_over_random_splits(method, options):
    # Permutations of one fixed pool are exchangeable, so E[coverage] lies in
    # [1 - alpha, 1 - alpha + 1/(n+1)] exactly; 500 splits put the Monte-Carlo sd near 0.001.
    rng = np.random.default_rng(0)
    probs, labels = planted(4000, np.full(10, 0.5), rng)
    alpha, n_cal, trials, tol = 0.1, 200, 500, 0.004
    coverage = []
    for trial in range(trials):
        perm = rng.permutation(len(labels))
        cal, test = perm[:n_cal], perm[n_cal : n_cal + 1000]
        cp = ConformalClassifier(method, alpha, seed=trial, **options).calibrate(probs[cal], labels[cal])
        sets = cp.predict_set(probs[test])  # (1000, 10)
        coverage.append(sets[np.arange(len(test)), labels[test]].mean())
    mean = float(np.mean(coverage))
    assert 1 - alpha - tol <= mean <= 1 - alpha + 1 / (n_cal + 1) + tol, mean


def test_class_conditional_coverage_holds_in_every_class():
    # Class 0 is rare and hard: marginal LAC under-covers it, the per-class quantiles do not.
    rng = np.random.default_rng(1)
    probs, labels = planted(8000, [0.3, 1.0, 1.0, 3.0], rng)
    alpha, n_cal, trials, tol = 0.1, 1000, 300, 0.01
    per_class = {False: [], True: []}
    smallest = n_cal
    for _ in range(trials):
        perm = rng.permutation(len(labels))
        cal, test = perm[:n_cal], perm[n_cal : n_cal + 2000]
        smallest = min(smallest, int(np.bincount(labels[cal], minlength=4).min()))
        for conditional in (False, True):
            cp = ConformalClassifier("lac", alpha, class_conditional=conditional).calibrate(probs[cal], labels[cal])
            hit = cp.predict_set(probs[test])[np.arange(len(test)), labels[test]]
            per_class[conditional].append([hit[labels[test] == k].mean() for k in range(4)])
    conditional = np.mean(per_class[True], axis=0)  # (4,)
    assert np.all(conditional >= 1 - alpha - tol), conditional
    assert np.all(conditional <= 1 - alpha + 1 / (smallest + 1) + tol), conditional
    assert np.mean(per_class[False], axis=0)[0] < 1 - alpha - 0.1  # the marginal method misses it


def test_quantile_is_the_finite_sample_order_statistic():
    # n = 19, alpha = 0.1: k = ceil(20 * 0.9) = 18, so the 18th smallest of 1 - p_true.
    true_p = np.linspace(0.05, 0.95, 19)
    probs = np.stack([true_p, 1 - true_p], axis=1)  # (19, 2)
    cp = ConformalClassifier("lac", 0.1).calibrate(probs, np.zeros(19, dtype=int))
    assert cp.quantile == pytest.approx(np.sort(1 - true_p)[17])
    assert cp.quantiles.tolist() == [cp.quantile, cp.quantile]
    # n = 9 is the fewest for alpha = 0.1 (k = 9 = n): the largest score.
    cp = ConformalClassifier("lac", 0.1).calibrate(probs[:9], np.zeros(9, dtype=int))
    assert cp.quantile == pytest.approx(np.max(1 - true_p[:9]))


def test_aps_scores_by_hand():
    probs = np.array([[0.5, 0.3, 0.2]])
    scores = CONFORMAL.get("aps")().scores(probs, np.random.default_rng(0))
    np.testing.assert_allclose(scores, [[0.5, 0.8, 1.0]])
    raps = CONFORMAL.get("raps")(lam=0.1, k_reg=1).scores(probs, np.random.default_rng(0))
    np.testing.assert_allclose(raps, [[0.5, 0.9, 1.2]])


def test_too_few_calibration_examples_say_how_many():
    probs, labels = planted(5, np.ones(3), np.random.default_rng(2))
    with pytest.raises(DataError, match=r"5 calibration examples are too few for alpha=0.1.*at least 9"):
        ConformalClassifier("lac", 0.1).calibrate(probs, labels)
    probs, labels = planted(40, [0.05, 5, 5], np.random.default_rng(2))
    with pytest.raises(DataError, match="calibration examples of class 0"):
        ConformalClassifier("lac", 0.1, class_conditional=True).calibrate(probs, labels)


def test_matches_mapie_lac():
    pytest.importorskip("mapie", reason="mapie is not installed (pip install -e '.[dev]')")
    from mapie.classification import SplitConformalClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Passthrough(ClassifierMixin, BaseEstimator):
        """A 'model' whose inputs are already its probabilities."""

        def fit(self, X, y):
            self.classes_ = np.arange(np.asarray(X).shape[1])
            return self

        def predict_proba(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(axis=1)

    probs, labels = planted(1500, np.ones(5), np.random.default_rng(3))
    for alpha in (0.05, 0.1, 0.2):
        mapie = SplitConformalClassifier(
            Passthrough().fit(probs, labels), confidence_level=1 - alpha, conformity_score="lac", prefit=True
        )
        mapie.conformalize(probs[:500], labels[:500])
        _, theirs = mapie.predict_set(probs[500:])  # (1000, 5, 1)
        ours = ConformalClassifier("lac", alpha).calibrate(probs[:500], labels[:500])
        np.testing.assert_array_equal(ours.predict_set(probs[500:]), theirs[:, :, 0])
        score_fn = getattr(mapie._mapie_classifier, "conformity_score_function_", None)  # private: best effort
        if score_fn is not None and hasattr(score_fn, "quantiles_"):
            assert ours.quantile == pytest.approx(float(np.ravel(score_fn.quantiles_)[0]))


def test_stochastic_samples_are_averaged():
    rng = np.random.default_rng(4)
    samples = np.stack([planted(300, np.ones(4), rng)[0] for _ in range(3)])  # (3, 300, 4)
    labels = rng.integers(0, 4, 300)
    a = ConformalClassifier("lac", 0.2).calibrate(samples, labels)
    b = ConformalClassifier("lac", 0.2).calibrate(samples.mean(axis=0), labels)
    assert a.quantile == b.quantile
    np.testing.assert_array_equal(a.predict_set(samples), b.predict_set(samples.mean(axis=0)))


def test_seeded_randomised_sets_repeat_and_raps_without_penalty_is_aps():
    probs, labels = planted(600, np.ones(6), np.random.default_rng(5))
    runs = [
        ConformalClassifier(m, 0.1, seed=7, randomized=True, **opts)
        .calibrate(probs[:300], labels[:300])
        .predict_set(probs[300:])
        for m, opts in (("aps", {}), ("aps", {}), ("raps", {"lam": 0.0}))
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


@pytest.mark.parametrize("conditional", [False, True])
def test_state_round_trips_through_json(conditional):
    probs, labels = planted(800, np.ones(3), np.random.default_rng(6))
    cp = ConformalClassifier("raps", 0.1, class_conditional=conditional, lam=np.float64(0.05), k_reg=np.int64(1))
    cp.calibrate(probs[:400], labels[:400])
    loaded = ConformalClassifier.from_state(json.loads(json.dumps(cp.state())))
    assert loaded.quantile == cp.quantile
    np.testing.assert_array_equal(loaded.predict_set(probs[400:]), cp.predict_set(probs[400:]))
    assert ConformalClassifier.from_state(ConformalClassifier("lac").state()).quantiles is None


def test_predict_set_before_calibrate_says_what_to_call():
    with pytest.raises(NotCalibratedError, match=r"call calibrate\(probs, labels\) .* first"):
        ConformalClassifier("aps").predict_set(np.full((2, 2), 0.5))


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, "0.1", True, None])
def test_bad_alpha_is_named(alpha):
    with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\); got .*alpha=0.1"):
        ConformalClassifier("lac", alpha)


def test_bad_method_and_options_are_named():
    with pytest.raises(ConfigError, match="unknown conformal score 'topk'; choose one of: aps, lac, raps"):
        ConformalClassifier("topk")
    with pytest.raises(ConfigError, match="'lac' has no option lam; its options are: \\(none\\)"):
        ConformalClassifier("lac", lam=0.1)
    with pytest.raises(ConfigError, match="lam must be a finite number >= 0"):
        ConformalClassifier("raps", lam=-1)
    with pytest.raises(ConfigError, match="k_reg must be an integer >= 0"):
        ConformalClassifier("raps", k_reg=1.5)


def test_bad_arrays_are_named():
    good = np.full((4, 2), 0.5)
    cp = ConformalClassifier("lac", 0.5)
    with pytest.raises(DataError, match=r"shape \(N, C\) or \(M, N, C\); got shape \(4,\)"):
        cp.calibrate(np.full(4, 0.5), [0, 1, 0, 1])
    with pytest.raises(DataError, match="must sum to 1"):
        cp.calibrate(np.full((4, 2), 0.9), [0, 1, 0, 1])
    with pytest.raises(DataError, match="not logits"):
        cp.calibrate(np.array([[3.0, -1.0]] * 4), [0, 1, 0, 1])
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\) for 2 classes; got 2 at position 3"):
        cp.calibrate(good, [0, 1, 0, 2])
    with pytest.raises(DataError, match=r"labels must have shape \(4,\)"):
        cp.calibrate(good, [0, 1])
    with pytest.raises(DataError, match="integer class indices"):
        cp.calibrate(good, ["a", "b", "a", "b"])
    cp.calibrate(good, [0, 1, 0, 1])
    with pytest.raises(DataError, match="probs have 3 classes but the calibration had 2"):
        cp.predict_set(np.full((1, 3), 1 / 3))
