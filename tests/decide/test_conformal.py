"""Split conformal sets: coverage on planted data, the finite-sample quantile, MAPIE, staging, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import beta, binom
from sklearn.base import BaseEstimator, ClassifierMixin

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


@pytest.mark.parametrize(("n", "alpha", "k"), [(20, 0.1, 19), (30, 0.25, 24), (50, 0.2, 41)])
def test_quantile_uses_n_plus_one_where_it_matters(n, alpha, k):
    # Here ceil((n + 1)(1 - alpha)) = k but ceil(n (1 - alpha)) = k - 1, so the two order statistics differ.
    assert math.ceil(n * (1 - alpha)) == k - 1
    scores = np.random.default_rng(n).permutation(np.arange(1, n + 1) / (n + 1))  # distinct, known ranks
    probs = np.stack([1 - scores, scores], axis=1)  # (n, 2): LAC score of class 0 is `scores`
    cp = ConformalClassifier("lac", alpha).calibrate(probs, np.zeros(n, dtype=int))
    assert cp.quantile == k / (n + 1)  # the k-th smallest, exactly
    assert cp.predict_set(probs)[:, 0].sum() == k  # it covers exactly k of the n calibration inputs


# Planted inputs come from a few fixed distributions (exact in binary), so the deterministic APS/RAPS
# scores take few values (ties: deterministic sets over-cover) while the randomised scores are continuous.
PROTOTYPES = np.array([[16, 10, 4, 2], [3, 20, 7, 2], [1, 3, 26, 2]]) / 32  # (J, C)


def planted_prototypes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities, each row one of PROTOTYPES with equal chance, and labels drawn from them."""
    probs = PROTOTYPES[rng.integers(0, len(PROTOTYPES), n)]  # (N, C)
    u = rng.random(n)[:, None]  # (N, 1)
    return probs, np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def expected_sets(penalty: np.ndarray, n: int, k: int) -> dict:
    """Expected set size and coverage on PROTOTYPES data, over calibration sets of size n and test inputs.

    The quantile q is the k-th smallest of n scores with CDF G, so P(q <= x) = P(Binomial(n, G(x)) >= k).
    Randomised: the true label at rank r scores (mass above r) + U * p_r + penalty_r, U ~ Uniform(0, 1), so
    label r is in the set with probability clip((q - mass above r - penalty_r) / p_r, 0, 1); G is continuous
    and P(q <= x) = BetaCDF(G(x); k, n + 1 - k). Deterministic: the score is (mass up to r) + penalty_r.
    """
    ranked = -np.sort(-PROTOTYPES, axis=1)  # (J, C) most probable first
    above = np.cumsum(ranked, axis=1) - ranked  # (J, C)
    x = np.linspace(0.0, 1.0 + penalty.max(), 40001)  # (X,) every score a test input can reach
    chance = np.clip((x[:, None, None] - above - penalty) / ranked, 0.0, 1.0)  # (X, J, C)
    cdf = (chance * ranked).sum(axis=2).mean(axis=1)  # (X,) G(x)
    size = chance.sum(axis=2).mean(axis=1)  # (X,)
    step = np.diff(beta.cdf(cdf, k, n + 1 - k))  # (X - 1,) P(q in each grid cell)
    det = np.cumsum(ranked, axis=1) + penalty  # (J, C); same float operations as the module: exact ties
    values = np.unique(det)  # (V,)
    det_cdf = np.array([ranked[det <= v].sum() / len(ranked) for v in values])  # (V,)
    det_size = np.array([(det <= v).sum() / len(ranked) for v in values])  # (V,)
    det_at = np.diff(binom.sf(k - 1, n, det_cdf), prepend=0.0)  # (V,) P(q = v)
    return {
        "randomized": (float(step @ (size[1:] + size[:-1]) / 2), float(step @ (cdf[1:] + cdf[:-1]) / 2)),
        "deterministic": (float(det_at @ det_size), float(det_at @ det_cdf)),
    }


@pytest.mark.parametrize(("method", "options"), [("aps", {}), ("raps", {"lam": 0.1, "k_reg": 1})])
def test_randomised_sets_are_smaller_by_the_expected_amount_and_still_cover(method, options):
    # Fresh planted data per trial: mean size and coverage over 300 trials have Monte-Carlo sd ~0.008
    # and ~0.0012. Without the U term the randomised sets are the deterministic ones (mean size ~2.68).
    rng = np.random.default_rng(11)
    alpha, n_cal, n_test, trials = 0.1, 300, 1000, 300
    k = math.ceil((n_cal + 1) * (1 - alpha))  # 271
    ranks = np.arange(1, PROTOTYPES.shape[1] + 1)
    penalty = options.get("lam", 0.0) * np.maximum(0, ranks - options.get("k_reg", 0))  # (C,) as RAPS.scores
    expected = expected_sets(penalty, n_cal, k)
    assert expected["randomized"][1] == pytest.approx(k / (n_cal + 1), abs=1e-6)  # exact under exchangeability
    realised = {"randomized": [], "deterministic": []}
    for trial in range(trials):
        probs, labels = planted_prototypes(n_cal + n_test, rng)
        for kind in realised:
            cp = ConformalClassifier(method, alpha, seed=trial, randomized=kind == "randomized", **options)
            sets = cp.calibrate(probs[:n_cal], labels[:n_cal]).predict_set(probs[n_cal:])  # (n_test, C)
            realised[kind].append((sets.sum(axis=1).mean(), sets[np.arange(n_test), labels[n_cal:]].mean()))
    (rand_size, rand_cov), (det_size, det_cov) = (np.mean(realised[kind], axis=0) for kind in realised)
    assert rand_size == pytest.approx(expected["randomized"][0], abs=0.04), (rand_size, expected)
    assert det_size == pytest.approx(expected["deterministic"][0], abs=0.04), (det_size, expected)
    shrink = expected["deterministic"][0] - expected["randomized"][0]  # ~0.25 labels
    assert det_size - rand_size == pytest.approx(shrink, abs=0.05)
    assert 1 - alpha - 0.005 <= rand_cov <= k / (n_cal + 1) + 0.005, rand_cov  # exact, not conservative
    assert det_cov == pytest.approx(expected["deterministic"][1], abs=0.005)
    assert det_cov > 1 - alpha + 1 / (n_cal + 1) + 0.015, det_cov  # the ties make deterministic sets over-cover


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


class Passthrough(ClassifierMixin, BaseEstimator):
    """A prefit 'model' for MAPIE whose inputs are already its probabilities."""

    def fit(self, X, y):
        self.classes_ = np.arange(np.asarray(X).shape[1])
        return self

    def predict_proba(self, X):
        return np.asarray(X)

    def predict(self, X):
        return np.asarray(X).argmax(axis=1)


def mapie_split(probs, labels, alpha: float, score: str):
    """MAPIE 1.x's split conformal classifier, conformalized on (probs, labels); mapie is a dev dependency."""
    from mapie.classification import SplitConformalClassifier  # an ImportError fails: pip install -e '.[dev]'

    model = Passthrough().fit(probs, labels)
    mapie = SplitConformalClassifier(model, confidence_level=1 - alpha, conformity_score=score, prefit=True)
    return mapie.conformalize(probs, labels)


def test_matches_mapie_lac():
    # n = 500 calibration inputs: for every alpha here ceil((n + 1)(1 - alpha)) > ceil(n (1 - alpha)).
    probs, labels = planted(1500, np.ones(5), np.random.default_rng(3))
    cal, test, n = slice(0, 500), slice(500, None), 500
    true_scores = 1 - probs[np.arange(n), labels[cal]]  # (n,) LAC scores of the true labels
    for alpha in (0.05, 0.1, 0.2):
        k = math.ceil((n + 1) * (1 - alpha))
        assert k > math.ceil(n * (1 - alpha))
        mapie = mapie_split(probs[cal], labels[cal], alpha, "lac")
        np.testing.assert_allclose(np.ravel(mapie.conformity_scores), true_scores)  # public: the same scores
        ours = ConformalClassifier("lac", alpha).calibrate(probs[cal], labels[cal])
        _, theirs = mapie.predict_set(probs[test])  # (1000, 5, 1)
        np.testing.assert_array_equal(ours.predict_set(probs[test]), theirs[:, :, 0])
        # Each quantile through the public API: which calibration inputs their own set covers. The scores are
        # distinct, so exactly the k smallest are covered and the largest covered score is the quantile.
        _, theirs_cal = mapie.predict_set(probs[cal])  # (n, 5, 1)
        covered = {
            "mapie": theirs_cal[np.arange(n), labels[cal], 0],
            "ours": ours.predict_set(probs[cal])[np.arange(n), labels[cal]],
        }
        for who, hit in covered.items():
            assert hit.sum() == k, (who, alpha, int(hit.sum()), k)
            assert true_scores[hit].max() == np.sort(true_scores)[k - 1] == ours.quantile, (who, alpha)


def test_deterministic_aps_scores_bound_mapies_randomised_ones():
    # MAPIE's APS always randomises calibration scores: mass up to and including y, minus U * p_y. Ours
    # without randomisation is that mass, so theirs = ours - U * p_y with U ~ Uniform(0, 1).
    probs, labels = planted(1000, np.ones(5), np.random.default_rng(8))
    mapie = mapie_split(probs, labels, 0.1, "aps")
    ours = CONFORMAL.get("aps")().scores(probs, np.random.default_rng(0))[np.arange(1000), labels]  # (1000,)
    p_true = probs[np.arange(1000), labels]
    u = (ours - np.ravel(mapie.conformity_scores)) / p_true  # (1000,)
    assert u.min() >= -1e-9 and u.max() <= 1 + 1e-9
    assert abs(u.mean() - 0.5) < 0.05 and abs(np.mean(u < 0.25) - 0.25) < 0.05  # sd ~0.009 and ~0.014


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


def test_nonempty_sets_add_the_top_label_only_where_a_set_was_empty_and_still_cover():
    """LAC at alpha = 0.4 on a peaked 10-class model leaves ~19% of sets empty; nonempty=True fills exactly those
    with the top label, so sets are supersets, never empty, and coverage stays >= 1 - alpha."""
    rng = np.random.default_rng(11)
    probs, labels = planted(6000, np.full(10, 0.1), rng)
    cal, test = slice(0, 1000), slice(1000, None)
    plain = ConformalClassifier("lac", 0.4).calibrate(probs[cal], labels[cal])
    filled = ConformalClassifier("lac", 0.4, nonempty=True).calibrate(probs[cal], labels[cal])
    a, b = plain.predict_set(probs[test]), filled.predict_set(probs[test])
    empty = a.sum(1) == 0
    assert empty.mean() > 0.05  # the case the option is for
    assert (b.sum(1) >= 1).all() and (b >= a).all()
    assert (b[~empty] == a[~empty]).all()  # only empty sets change ...
    assert (b[empty].sum(1) == 1).all() and (b[empty].argmax(1) == probs[test][empty].argmax(1)).all()  # ... to top-1
    y = labels[test]
    cover_a, cover_b = a[np.arange(len(y)), y].mean(), b[np.arange(len(y)), y].mean()
    assert cover_b >= 0.6 - 0.02 and cover_b > cover_a
    again = ConformalClassifier.from_state(json.loads(json.dumps(filled.state())))
    assert again.nonempty and (again.predict_set(probs[test]) == b).all()
    old = filled.state()
    del old["nonempty"]  # a state written before the option: sets may be empty, as they were
    assert not ConformalClassifier.from_state(old).nonempty
