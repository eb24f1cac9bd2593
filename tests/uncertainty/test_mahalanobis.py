import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.evaluation.calibration import ood_auroc
from caveat.uncertainty import ArrayError, NotFittedError
from caveat.uncertainty.methods import Mahalanobis

D, K = 8, 3


def planted(n, seed):
    """Features of K classes: means 4 apart along the first axes, one known shared covariance."""
    rng = np.random.default_rng(seed)
    a = np.random.default_rng(99).normal(size=(D, D)) / np.sqrt(D)
    cov = a @ a.T + 0.5 * np.eye(D)  # (D, D), known
    means = 4.0 * np.eye(K, D)  # (K, D)
    labels = rng.integers(0, K, size=n)
    x = means[labels] + rng.multivariate_normal(np.zeros(D), cov, size=n)  # (N, D)
    return x, labels, means, cov


def direct(x, means, cov):
    """Textbook min_k (x - mu_k)' inv(cov) (x - mu_k), one class at a time."""
    p = np.linalg.inv(cov)
    return np.min([np.einsum("nd,de,ne->n", x - m, p, x - m) for m in means], axis=0)


def test_matches_direct_computation_with_empirical_covariance():
    x, y, _, _ = planted(400, seed=0)
    m = Mahalanobis(shrinkage="none", ridge=0.0).fit(x, y)
    means = np.stack([x[y == k].mean(axis=0) for k in range(K)])
    centered = x - means[y]
    cov = centered.T @ centered / len(x)  # maximum-likelihood tied covariance
    test = planted(50, seed=1)[0]
    np.testing.assert_allclose(m.score(test), direct(test, means, cov), rtol=1e-8)


def test_approaches_known_covariance():
    x, y, means, cov = planted(4000, seed=2)
    m = Mahalanobis().fit(x, y)
    test = planted(200, seed=3)[0]
    truth = direct(test, means, cov)
    # estimation error at N = 4000, D = 8 is a few percent; 10% leaves a wide margin
    assert np.median(np.abs(m.score(test) - truth) / truth) < 0.1


def test_separates_out_of_distribution():
    x, y, _, _ = planted(600, seed=4)
    m = Mahalanobis().fit(x, y)
    x_in = planted(300, seed=5)[0]
    x_out = np.random.default_rng(6).normal(loc=0.0, scale=3.0, size=(300, D)) + 6.0  # far, wider cloud
    assert ood_auroc(m.score(x_in), m.score(x_out)) > 0.95


def test_state_round_trip_through_safetensors(tmp_path):
    from safetensors.numpy import load_file, save_file

    x, y, _, _ = planted(300, seed=7)
    m = Mahalanobis().fit(x, y)
    save_file(m.state(), str(tmp_path / "mahalanobis.safetensors"))
    again = Mahalanobis.from_state(load_file(str(tmp_path / "mahalanobis.safetensors")))
    np.testing.assert_array_equal(again.score(x), m.score(x))
    np.testing.assert_array_equal(again.classes, np.arange(K))


def test_errors_name_value_and_fix():
    with pytest.raises(NotFittedError, match=r"call fit\(calibration features, labels\) first"):
        Mahalanobis().score(np.zeros((2, D)))
    with pytest.raises(ConfigError, match="shrinkage must be one of.*got 'oas'"):
        Mahalanobis(shrinkage="oas")
    with pytest.raises(ConfigError, match="ridge must be >= 0; got -1"):
        Mahalanobis(ridge=-1)
    with pytest.raises(ArrayError, match=r"features must have shape \(N, D\).*Predictions.features"):
        Mahalanobis().fit(np.zeros(5), np.zeros(5, int))
    with pytest.raises(ArrayError, match=r"labels must be integer class ids of shape \(5,\)"):
        Mahalanobis().fit(np.zeros((5, D)), np.zeros(5))
    m = Mahalanobis().fit(*planted(100, seed=8)[:2])
    with pytest.raises(ArrayError, match=f"D = {D} columns"):
        m.score(np.zeros((2, D + 1)))
    with pytest.raises(ArrayError, match=r"lacks \['precision'\]"):
        Mahalanobis.from_state({"means": np.zeros((2, 3)), "classes": np.arange(2)})
