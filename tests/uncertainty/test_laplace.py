import json

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax

from caveat.errors import ConfigError, DataError, NotCalibratedError
from caveat.uncertainty import ArrayError, NotFittedError
from caveat.uncertainty.methods import laplace as laplace_module
from caveat.uncertainty.methods.laplace import LastLayerLaplace
from caveat.uncertainty.scores import entropy, mutual_information


def random_head(n, d=3, c=3, seed=0):
    """Features, labels and an (untrained) last layer: enough for every closed-form identity."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, c, size=n), rng.normal(size=(c, d)), rng.normal(size=c)


def planted(n, seed, off_manifold=0.0):
    """Three classes 3 apart in the first axes of D = 4; the last axis barely varies in training,
    so inputs shifted along it (``off_manifold``) lie far from every training feature."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    x = 3.0 * np.eye(3, 4)[labels] + rng.normal(size=(n, 4)) * np.array([1.0, 1.0, 1.0, 0.05])
    x[:, 3] += off_manifold
    return x, labels


def map_head(x, y, c=3, l2=0.1):
    """MAP weights of softmax regression (sum cross-entropy + l2/2 |theta|^2); Newton, as the loss is convex."""
    phi, onehot = np.c_[x, np.ones(len(x))], np.eye(c)[y]  # (N, D + 1), (N, C)
    theta = np.zeros((c, phi.shape[1]))  # (C, D + 1)
    for _ in range(30):
        p = softmax(phi @ theta.T, axis=1)
        grad = ((p - onehot).T @ phi + l2 * theta).ravel()  # row-major [W | b], as in the tests below
        hess = sum(np.kron(np.diag(q) - np.outer(q, q), np.outer(f, f)) for q, f in zip(p, phi))
        theta -= np.linalg.solve(hess + l2 * np.eye(theta.size), grad).reshape(theta.shape)
    assert np.abs(grad).max() < 1e-6
    return theta[:, :-1], theta[:, -1]


def autograd_hessian(x, y, w, b):
    """torch Hessian of the summed cross-entropy w.r.t. (W, b), packed row-major as [W | b]: (P, P)."""
    xt, yt = torch.tensor(x), torch.tensor(y)
    c, d = w.shape
    blocks = torch.autograd.functional.hessian(
        lambda w_, b_: torch.nn.functional.cross_entropy(xt @ w_.T + b_, yt, reduction="sum"),
        (torch.tensor(w), torch.tensor(b)),
    )
    (ww, wb), (bw, bb) = [[blk.numpy() for blk in row] for row in blocks]  # (C,D,C,D) (C,D,C) (C,C,D) (C,C)
    h = np.zeros((c, d + 1, c, d + 1))
    h[:, :d, :, :d], h[:, :d, :, d], h[:, d, :, :d], h[:, d, :, d] = ww, wb, bw, bb
    return h.reshape(c * (d + 1), c * (d + 1))


def jacobian(x, c):
    """J_n = I_C kron [x_n, 1]: the logits' Jacobian w.r.t. the packed [W | b]; (N, C, P)."""
    phi = np.c_[x, np.ones(len(x))]
    return np.stack([np.kron(np.eye(c), p[None, :]) for p in phi])


def direct_evidence(x, y, w, b, h, lam):
    """Laplace log evidence with a dense slogdet, for checking the eigenvalue shortcut."""
    theta = np.c_[w, b]
    loglik = log_softmax(x @ w.T + b, axis=1)[np.arange(len(y)), y].sum()
    _, logdet = np.linalg.slogdet(h + lam * np.eye(len(h)))
    return loglik - lam / 2 * np.sum(theta**2) + theta.size / 2 * np.log(lam) - logdet / 2


def test_full_ggn_equals_autograd_hessian():
    x, y, w, b = random_head(20)
    la = LastLayerLaplace(hessian="full", prior_precision=1.0).fit(x, y, w, b)
    np.testing.assert_allclose(la.ggn(), autograd_hessian(x, y, w, b), atol=1e-12)


def test_full_posterior_and_logit_covariance_by_hand():
    x, y, w, b = random_head(20, seed=1)
    lam = 0.7
    la = LastLayerLaplace(hessian="full", prior_precision=lam).fit(x, y, w, b)
    sigma = np.linalg.inv(autograd_hessian(x, y, w, b) + lam * np.eye(12))
    np.testing.assert_allclose(la.posterior_covariance(), sigma, atol=1e-12)
    test = np.random.default_rng(2).normal(size=(7, 3)) * 3
    j = jacobian(test, 3)  # (7, 3, 12)
    mean, cov = la.logit_covariance(test)
    np.testing.assert_allclose(mean, test @ w.T + b, atol=1e-12)  # the logit mean is the MAP output
    np.testing.assert_allclose(cov, j @ sigma @ j.transpose(0, 2, 1), atol=1e-10)
    np.testing.assert_allclose(la.logit_variance(test)[1], np.diagonal(cov, axis1=1, axis2=2), atol=1e-10)


def test_kron_equals_full_for_one_input():
    # one input makes the GGN (diag(p) - pp') kron phi phi' an exact Kronecker product
    x, y, w, b = random_head(1, d=4, c=3, seed=3)
    kron, full = LastLayerLaplace(hessian="kron").fit(x, y, w, b), LastLayerLaplace(hessian="full").fit(x, y, w, b)
    np.testing.assert_allclose(kron.ggn(), full.ggn(), atol=1e-12)
    assert kron.fitted_prior_precision == pytest.approx(full.fitted_prior_precision, rel=1e-8)
    np.testing.assert_allclose(kron.posterior_covariance(), full.posterior_covariance(), rtol=1e-8, atol=1e-10)
    test = np.random.default_rng(4).normal(size=(5, 4))
    np.testing.assert_allclose(kron.logit_covariance(test)[1], full.logit_covariance(test)[1], rtol=1e-8, atol=1e-10)


def test_kron_eigen_inverse_matches_dense_inverse():
    x, y, w, b = random_head(30, d=4, c=3, seed=5)
    lam = 0.3
    la = LastLayerLaplace(hessian="kron", prior_precision=lam).fit(x, y, w, b)
    phi, p = np.c_[x, np.ones(30)], softmax(x @ w.T + b, axis=1)
    g = sum(np.diag(q) - np.outer(q, q) for q in p)  # (C, C), summed
    a = phi.T @ phi / 30  # (D + 1, D + 1), averaged
    sigma = np.linalg.inv(np.kron(g, a) + lam * np.eye(15))
    np.testing.assert_allclose(la.ggn(), np.kron(g, a), atol=1e-12)
    np.testing.assert_allclose(la.posterior_covariance(), sigma, atol=1e-10)
    test = np.random.default_rng(6).normal(size=(6, 4))
    j = jacobian(test, 3)
    np.testing.assert_allclose(la.logit_covariance(test)[1], j @ sigma @ j.transpose(0, 2, 1), atol=1e-10)
    assert la.log_evidence() == pytest.approx(direct_evidence(x, y, w, b, np.kron(g, a), lam), rel=1e-10)


@pytest.mark.parametrize("hessian", ["full", "kron"])
def test_prior_precision_maximises_the_evidence(hessian):
    x, y = planted(60, seed=7)
    w, b = map_head(x, y)
    la = LastLayerLaplace(hessian=hessian).fit(x, y, w, b)
    h = la.ggn()  # dense; identical to the hand-built H or G kron A by the tests above
    for lam in (1e-3, 0.1, 1.0, 50.0):
        assert la.log_evidence(lam) == pytest.approx(direct_evidence(x, y, w, b, h, lam), rel=1e-10)
    grid = np.logspace(-4, 4, 801)
    dense = np.array([direct_evidence(x, y, w, b, h, lam) for lam in grid])
    best = la.fitted_prior_precision
    assert 1e-4 < best < 1e4 and direct_evidence(x, y, w, b, h, best) >= dense.max() - 1e-9
    # at the optimum MacKay's identity holds: lam |theta|^2 = gamma = sum_k h_k / (h_k + lam)
    eig = np.clip(np.linalg.eigvalsh(h), 0, None)
    assert best * np.sum(np.c_[w, b] ** 2) == pytest.approx(np.sum(eig / (eig + best)), rel=1e-6)


def test_evidence_on_the_bound_warns():
    x, y, _, _ = random_head(10)
    with pytest.warns(UserWarning, match="search bound"):  # theta = 0: the prior can be made infinitely tight
        la = LastLayerLaplace().fit(x, y, np.zeros((3, 3)), np.zeros(3))
    assert la.fitted_prior_precision == 1e4


@pytest.mark.parametrize("hessian", ["full", "kron"])
def test_mc_draws_have_the_logit_moments_and_agree_with_probit(hessian):
    x, y = planted(200, seed=8)
    w, b = map_head(x, y)
    test = planted(40, seed=9)[0]
    mc = LastLayerLaplace(hessian=hessian, prior_precision=10.0, link="mc", samples=20000).fit(x, y, w, b)
    probit = LastLayerLaplace(hessian=hessian, prior_precision=10.0).fit(x, y, w, b)
    mean, cov = mc.logit_covariance(test)
    draws = mc.sample_logits(test)  # (M, N, C)
    assert draws.shape == (20000, 40, 3)
    # Monte Carlo error of the moments at M = 20000 is < 1% of the standard deviation
    scale = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))  # (N, C)
    assert np.max(np.abs(draws.mean(axis=0) - mean) / scale) < 0.05
    emp = np.einsum("mnc,mnk->nck", draws - mean, draws - mean) / len(draws)
    assert np.max(np.abs(emp - cov) / (scale[:, :, None] * scale[:, None, :])) < 0.05
    # the probit link is an approximation: at these variances it is within 0.03 everywhere, 0.003 on average
    diff = np.abs(mc.predict(test) - probit.predict(test))
    assert diff.max() < 0.03 and diff.mean() < 0.003
    np.testing.assert_array_equal(mc.predict(test), mc.predict(test))  # seeded afresh each call


def test_planted_far_inputs_are_more_uncertain_and_training_argmax_is_kept():
    x, y = planted(300, seed=10)
    w, b = map_head(x, y)
    la = LastLayerLaplace().fit(x, y, w, b)
    far = planted(300, seed=11, off_manifold=20.0)[0]  # 400 training standard deviations off the last axis
    (m_in, v_in), (m_far, v_far) = la.logit_variance(x), la.logit_variance(far)
    assert np.median(v_far) > 10 * np.max(v_in)
    p_in, p_far = la.predict(x), la.predict(far)
    map_far = softmax(m_far, axis=1)
    assert entropy(p_far).mean() > entropy(p_in).mean() + 0.3  # measured: 1.06 vs 0.27 nats
    assert entropy(p_far).mean() > entropy(map_far).mean() + 0.5  # the MAP is near-certain out there
    sampled = la.sample_probs(np.r_[x, far], samples=200)  # (M, N, C) as in Predictions.probs
    mi = mutual_information(sampled)
    assert mi[300:].mean() > mi[:300].mean()
    # Probit rescales each class by its own variance, so it may change the argmax (see the next test);
    # on these training inputs the variances are small and it changes none.
    np.testing.assert_array_equal(p_in.argmax(axis=1), m_in.argmax(axis=1))
    assert (p_in.argmax(axis=1) == y).mean() == (m_in.argmax(axis=1) == y).mean()


def test_probit_can_change_the_argmax():
    # a hand-made posterior: class 0 has logit 2.0 and variance ~100, class 1 logit 1.9 and variance ~0
    la = LastLayerLaplace.from_state(
        {
            "settings": {
                "hessian": "kron",
                "link": "probit",
                "samples": 10,
                "seed": 0,
                "prior_precision": 0.01,
                "fitted_prior_precision": 0.01,
                "log_likelihood": 0.0,
                "n_train": 1,
            },
            "arrays": {
                "theta": np.array([[0.0, 2.0], [0.0, 1.9], [0.0, 0.0]]),
                "g_eigvals": np.array([0.0, 1e9, 1e9]),
                "g_eigvecs": np.eye(3),
                "a_eigvals": np.array([1.0, 1.0]),
                "a_eigvecs": np.eye(2),
            },
        }
    )
    mean, var = la.logit_variance(np.zeros((1, 1)))
    assert mean.argmax() == 0 and var[0, 0] == pytest.approx(100.0) and var[0, 1] < 1e-6
    assert la.predict(np.zeros((1, 1))).argmax() == 1


@pytest.mark.parametrize("hessian", ["full", "kron"])
def test_chunked_results_equal_one_pass(hessian, monkeypatch):
    x, y, w, b = random_head(40, d=5, c=4, seed=12)
    test = np.random.default_rng(13).normal(size=(23, 5))
    la = LastLayerLaplace(hessian=hessian).fit(x, y, w, b)
    whole = la.logit_covariance(test)[1], la.logit_variance(test)[1], la.predict(test)
    monkeypatch.setattr(laplace_module, "_CHUNK_BYTES", 1)  # one input per chunk
    chunked = la.logit_covariance(test)[1], la.logit_variance(test)[1], la.predict(test)
    for a, c in zip(whole, chunked):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
    assert LastLayerLaplace(hessian=hessian, link="mc").fit(x, y, w, b).predict(test).shape == (23, 4)


@pytest.mark.parametrize("hessian", ["full", "kron"])
def test_state_round_trip_through_safetensors_and_json(hessian, tmp_path):
    from safetensors.numpy import load_file, save_file

    x, y, w, b = random_head(50, d=4, c=3, seed=14)
    la = LastLayerLaplace(hessian=hessian, link="mc", samples=50, seed=3).fit(x, y, w, b)
    state = la.state()
    save_file(state["arrays"], str(tmp_path / "laplace.safetensors"))
    (tmp_path / "laplace.json").write_text(json.dumps(state["settings"]))
    again = LastLayerLaplace.from_state(
        {
            "settings": json.loads((tmp_path / "laplace.json").read_text()),
            "arrays": load_file(str(tmp_path / "laplace.safetensors")),
        }
    )
    test = np.random.default_rng(15).normal(size=(9, 4))
    np.testing.assert_array_equal(again.predict(test), la.predict(test))
    np.testing.assert_array_equal(again.sample_probs(test), la.sample_probs(test))
    assert again.log_evidence() == la.log_evidence()


def test_errors_name_value_and_fix():
    x, y, w, b = random_head(10)
    for err in (NotCalibratedError, NotFittedError):
        with pytest.raises(err, match=r"call fit\(train features, labels, weight, bias\) first"):
            LastLayerLaplace().predict(x)
    with pytest.raises(ConfigError, match="hessian must be one of.*got 'diag'"):
        LastLayerLaplace(hessian="diag")
    with pytest.raises(ConfigError, match="link must be one of.*got 'bma'"):
        LastLayerLaplace(link="bma")
    with pytest.raises(ConfigError, match="prior_precision must be a finite number > 0.*got -1"):
        LastLayerLaplace(prior_precision=-1)
    with pytest.raises(ConfigError, match="samples must be an integer >= 1; got 0"):
        LastLayerLaplace(samples=0)
    with pytest.raises(ConfigError, match=r"\(6100, 6100\) matrix for C \(D \+ 1\) = 61 x 100.*use hessian='kron'"):
        LastLayerLaplace(hessian="full").fit(np.zeros((2, 99)), np.zeros(2, int), np.zeros((61, 99)), np.zeros(61))
    with pytest.raises(DataError, match=r"features must have shape \(N, D\).*Predictions.features"):
        LastLayerLaplace().fit(x[0], y, w, b)
    with pytest.raises(DataError, match=r"weight must have shape \(C, D\) = \(C, 3\).*not its transpose"):
        LastLayerLaplace().fit(x, y, np.zeros((3, 4)), b)
    with pytest.raises(DataError, match=r"bias must have shape \(3,\)"):
        LastLayerLaplace().fit(x, y, w, np.zeros(4))
    with pytest.raises(DataError, match=r"labels must be class ids in \[0, 3\).*values in \[0, 5\]"):
        LastLayerLaplace().fit(x, np.r_[y[:-1], 5], w, b)
    with pytest.raises(ArrayError, match=r"labels must be integer class ids of shape \(10,\)"):
        LastLayerLaplace().fit(x, y.astype(float), w, b)
    la = LastLayerLaplace().fit(x, y, w, b)
    with pytest.raises(DataError, match="D = 3 columns as in fit"):
        la.predict(np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="samples must be an integer >= 1; got -2"):
        la.sample_probs(x, samples=-2)
    big = LastLayerLaplace(prior_precision=1.0).fit(
        np.zeros((2, 99)), np.zeros(2, int), np.zeros((61, 99)), np.zeros(61)
    )
    with pytest.raises(ConfigError, match=r"posterior_covariance\(\) would be a dense \(6100, 6100\).*logit_variance"):
        big.posterior_covariance()
    state = la.state()
    del state["arrays"]["a_eigvecs"]
    with pytest.raises(DataError, match=r"lacks arrays \['a_eigvecs'\]"):
        LastLayerLaplace.from_state(state)


def test_prior_tuned_on_held_out_nll_is_the_grid_minimum():
    x, y = planted(300, seed=11)
    w, b = map_head(x, y)
    held_x, held_y = planted(200, seed=12)
    grid = np.logspace(-3, 5, 17)
    la = LastLayerLaplace().fit(x, y, w, b)
    evidence_lam = la.fitted_prior_precision
    nll = []
    for lam in grid:  # the reference: a fresh fit at each fixed precision
        p = LastLayerLaplace(prior_precision=float(lam)).fit(x, y, w, b).predict(held_x)
        nll.append(-np.log(p[np.arange(len(held_y)), held_y]).mean())
    la.tune_prior_precision(held_x, held_y, grid=grid)
    assert la.fitted_prior_precision == grid[int(np.argmin(nll))]
    p = la.predict(held_x)
    assert -np.log(p[np.arange(len(held_y)), held_y]).mean() == pytest.approx(min(nll))
    assert la.fitted_prior_precision != evidence_lam  # the evidence's choice is not the NLL's
    back = LastLayerLaplace.from_state(la.state())
    assert back.fitted_prior_precision == la.fitted_prior_precision
    with pytest.raises(ConfigError, match="grid must be a non-empty 1-D array of positive precisions"):
        la.tune_prior_precision(held_x, held_y, grid=[0.0, 1.0])
