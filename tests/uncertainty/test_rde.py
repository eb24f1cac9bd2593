"""Robust density estimation: against scikit-learn's own kernel PCA and MCD, on planted data, and its state."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import MinCovDet
from sklearn.decomposition import KernelPCA
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.rde import RobustDensity


def blobs(n: int, d: int, seed: int, scale: float = 30.0) -> np.ndarray:
    """Rows on a curved low-dimensional set, at the large, uneven scale of LM hidden states."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-2, 2, (n, 2))
    basis = np.random.default_rng(99).normal(size=(4, d))
    x = np.column_stack([t, np.sin(t[:, :1] * 2), t[:, 1:] ** 2]) @ basis + 0.1 * rng.normal(size=(n, d))
    return x * np.linspace(1, scale, d)


def test_scores_equal_scikit_learns_kernel_pca_then_mcd():
    train, test = blobs(120, 12, seed=1), blobs(30, 12, seed=2)
    rde = RobustDensity(n_components=8, seed=3).fit(train)
    scaler = StandardScaler().fit(train)
    kpca = KernelPCA(n_components=8, kernel="rbf", gamma=1 / 12).fit(scaler.transform(train))
    mcd = MinCovDet(random_state=3).fit(kpca.transform(scaler.transform(train)))
    reference = mcd.mahalanobis(kpca.transform(scaler.transform(test)))
    np.testing.assert_allclose(rde.score(test), reference, rtol=1e-6)
    # the components themselves, up to each one's sign
    ours, theirs = rde._project(test), kpca.transform(scaler.transform(test))
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-6, atol=1e-9)


def test_a_minority_of_outliers_in_the_fitting_rows_does_not_hide_shifted_inputs():
    rng = np.random.default_rng(4)
    clean = blobs(200, 10, seed=5)
    outliers = clean[:30] + rng.normal(0, 400, (30, 10))  # 13% of the fitting rows far off the set
    train = np.vstack([clean, outliers])
    fresh, shifted = blobs(100, 10, seed=6), blobs(100, 10, seed=7) + rng.normal(0, 150, (100, 10))
    labels = np.r_[np.zeros(100), np.ones(100)]
    rde = RobustDensity(n_components=20).fit(train).score(np.vstack([fresh, shifted]))
    plain = Mahalanobis().fit(train, np.zeros(len(train), dtype=int)).score(np.vstack([fresh, shifted]))
    assert roc_auc_score(labels, rde) > 0.95
    assert roc_auc_score(labels, rde) > roc_auc_score(labels, plain)  # the plain covariance absorbed the outliers


def test_state_round_trips_through_safetensors(tmp_path):
    from safetensors.numpy import load_file, save_file

    train, test = blobs(80, 6, seed=8), blobs(10, 6, seed=9)
    rde = RobustDensity(n_components=5).fit(train)
    save_file(rde.state(), str(tmp_path / "rde.safetensors"))
    again = RobustDensity.from_state(load_file(str(tmp_path / "rde.safetensors")))
    np.testing.assert_array_equal(again.score(test), rde.score(test))
    state = rde.state()
    del state["precision"]
    with pytest.raises(ArrayError, match=r"lacks \['precision'\]"):
        RobustDensity.from_state(state)
    state = {**rde.state(), "location": np.zeros(3)}
    with pytest.raises(ArrayError, match=r"inconsistent RobustDensity state.*location"):
        RobustDensity.from_state(state)


def test_components_are_capped_so_mcd_can_fit():
    rde = RobustDensity(n_components=100).fit(blobs(21, 6, seed=10))
    assert rde.arrays["projection"].shape == (21, 10)  # (21 - 1) // 2


def test_beyond_max_rows_it_fits_a_seeded_subsample():
    x, test = blobs(50, 6, seed=12), blobs(5, 6, seed=13)
    capped = RobustDensity(n_components=5, max_rows=20, seed=4).fit(x)
    keep = np.sort(np.random.default_rng(4).permutation(50)[:20])
    np.testing.assert_array_equal(capped.score(test), RobustDensity(n_components=5, seed=4).fit(x[keep]).score(test))
    assert capped.arrays["x_fit"].shape == (20, 6)


def test_errors_name_the_value_and_the_fix():
    with pytest.raises(ConfigError, match=r"n_components must be an integer >= 1; got 0"):
        RobustDensity(n_components=0)
    with pytest.raises(ConfigError, match=r"gamma must be a finite number > 0.*got -1"):
        RobustDensity(gamma=-1)
    with pytest.raises(ConfigError, match=r"max_rows must be an integer >= 5; got 2"):
        RobustDensity(max_rows=2)
    with pytest.raises(NotFittedError, match=r"call fit"):
        RobustDensity().score(np.zeros((1, 3)))
    with pytest.raises(ArrayError, match=r"N >= 5"):
        RobustDensity().fit(np.zeros((3, 4)))
    fitted = RobustDensity(n_components=3).fit(blobs(20, 5, seed=11))
    with pytest.raises(ArrayError, match=r"score takes \(M, 5\) features; got shape \(2, 4\)"):
        fitted.score(np.zeros((2, 4)))
