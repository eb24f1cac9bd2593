"""k-th nearest-neighbour distance (Sun et al. 2022) against scikit-learn's exact cosine neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors as SkNeighbours

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError, NotFittedError
from caveat.uncertainty.methods.knn import NearestNeighbours


@pytest.mark.parametrize("k", [1, 3])
def test_distances_equal_sklearn_cosine_neighbours(k):
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(300, 16)), rng.normal(size=(50, 16))
    ours = NearestNeighbours(k=k).fit(bank).score(queries)
    reference = SkNeighbours(n_neighbors=k, metric="cosine", algorithm="brute").fit(bank).kneighbors(queries)[0]
    np.testing.assert_allclose(ours, reference[:, -1], atol=2e-3)  # the bank is stored in half precision


def test_planted_out_of_distribution_points_score_higher():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 5
    train = np.concatenate([c + rng.normal(size=(100, 32)) for c in centres])
    inside = np.concatenate([c + rng.normal(size=(10, 32)) for c in centres])
    outside = rng.normal(size=(40, 32)) * 5  # new directions, no training cluster there
    knn = NearestNeighbours().fit(train)
    assert knn.score(outside).min() > knn.score(inside).max()


def test_bank_is_subsampled_seeded_and_round_trips():
    x = np.random.default_rng(2).normal(size=(500, 8))
    a, b = NearestNeighbours(max_bank=100, seed=3).fit(x), NearestNeighbours(max_bank=100, seed=3).fit(x)
    assert a.bank.shape == (100, 8) and a.bank.dtype == np.float16
    np.testing.assert_array_equal(a.bank, b.bank)
    again = NearestNeighbours.from_state(a.state())
    np.testing.assert_array_equal(again.score(x[:20]), a.score(x[:20]))


def test_bad_input_says_what_to_do():
    with pytest.raises(ConfigError, match="k=1"):
        NearestNeighbours(k=0)
    with pytest.raises(NotFittedError, match="fit"):
        NearestNeighbours().score(np.zeros((1, 3)))
    knn = NearestNeighbours().fit(np.eye(3))
    with pytest.raises(ArrayError, match=r"\(N, 3\)"):
        knn.score(np.zeros((2, 4)))
    with pytest.raises(ArrayError, match="NaN"):
        NearestNeighbours().fit(np.array([[np.nan, 1.0]]))
