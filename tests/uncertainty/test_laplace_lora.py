"""Laplace-LoRA (Yang et al. 2024) on tiny peft models, checked against dense computations: the KFAC GGN of a
layer against the exact GGN block, the KFAC predictive covariance against J (H + lam I)^-1 J' with H
materialised, sampled weights against Sigma, the prior precision's limits and choice, state, errors, and the
``laplace_lora`` method of ``caveat evaluate`` on a tiny LoRA run."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from transformers import AutoModel

from caveat.config import PeftConfig, load_config
from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError
from caveat.evaluation.methods import METHODS, Context
from caveat.evaluation.run import evaluate_run
from caveat.models.classifier import CaveatModel
from caveat.models.lora import add_lora
from caveat.models.rundir import Run, open_run
from caveat.training.loop import Trainer
from caveat.types import Task
from caveat.uncertainty import NotFittedError
from caveat.uncertainty.methods.laplace import LaplaceArrayError
from caveat.uncertainty.methods.laplace_lora import TUNE_GRID, LaplaceLoRA
from tests.conftest import one_thread, tiny_overrides

TARGETS = {"bert": ["query", "value"], "llama": ["q_proj", "v_proj"]}


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def lora_model(folder, kind="bert", *, seed=0, head_scale=1.0, targets=None) -> CaveatModel:
    """A tiny backbone with a rank-2 LoRA adapter (no dropout) and a 3-class head, all seeded; lora_B (zero at
    initialisation) and the head are drawn at random so that every Jacobian is non-trivial."""
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(folder)
    lora = PeftConfig(method="lora", r=2, alpha=4.0, dropout=0.0, target_modules=targets or TARGETS[kind])
    encoder = add_lora(encoder, lora)
    model = CaveatModel(encoder, 3, task=Task.TEXT_CLASSIFICATION, pooling="auto", head_dropout=0.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
        model.head.weight.normal_(0.0, head_scale)
        model.head.bias.normal_(0.0, 0.1)
    return model.double().eval()  # float64: the dense checks below hold to 1e-9


def random_batches(n_batches, size, *, seed, max_len=6, left_pad=False, labels=None) -> list[dict]:
    """Random token ids (ids 5..39, in every tiny vocabulary) of lengths 2..max_len, padded; labels if given
    (a function of the batch) else uniform."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        lengths = torch.randint(2, max_len + 1, (size,), generator=g)
        ids = torch.randint(5, 40, (size, max_len), generator=g)
        mask = (torch.arange(max_len)[None] < lengths[:, None]).long()  # (B, T) right padding
        if left_pad:
            mask = mask.flip(1)
        batch = {"input_ids": ids * mask, "attention_mask": mask}
        batch["labels"] = labels(batch) if labels else torch.randint(0, 3, (size,), generator=g)
        out.append(batch)
    return out


def blocks(la):
    """(name, slice) of each layer's parameters in the posterior vector."""
    out, start = [], 0
    for name, d_out, d_in in la.layers:
        out.append((name, slice(start, start + d_out * d_in)))
        start += d_out * d_in
    return out


def kron_factors(la, name):
    """The layer's G and A rebuilt from their stored eigendecompositions."""
    f = la.factors[name]
    return (f["g_eigvecs"] * f["g_eigvals"]) @ f["g_eigvecs"].T, (f["a_eigvecs"] * f["a_eigvals"]) @ f["a_eigvecs"].T


def flat_params(model, la) -> torch.Tensor:
    """The posterior's parameters as one vector: each layer's [W | b] row-major, in la.layers order."""
    parts = []
    for name, _, _ in la.layers:
        m = model.get_submodule(name)
        theta = m.weight if m.bias is None else torch.cat([m.weight, m.bias[:, None]], 1)
        parts.append(theta.detach().reshape(-1))
    return torch.cat(parts)


def call_with(model, la, flat, batch) -> torch.Tensor:
    """Logits (B, C) of the model with the posterior's parameters set to ``flat`` (torch.func.functional_call)."""
    params = {}
    for name, sl in blocks(la):
        m = model.get_submodule(name)
        theta = flat[sl].view(m.out_features, -1)
        params[f"{name}.weight"] = theta[:, : m.in_features]
        if m.bias is not None:
            params[f"{name}.bias"] = theta[:, m.in_features]
    return torch.func.functional_call(
        model, params, (), {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    ).logits


def dense_jacobian(model, la, batch) -> np.ndarray:
    """d logits / d theta by autograd over the flattened posterior parameters; (B, C, P)."""
    flat = flat_params(model, la)
    return torch.autograd.functional.jacobian(lambda v: call_with(model, la, v, batch), flat).numpy()


def dense_covariance(la) -> np.ndarray:
    """inv(H + lam I) with H the block-diagonal KFAC GGN, blocks G kron A materialised; (P, P)."""
    h = np.zeros((la.num_params, la.num_params))
    for name, sl in blocks(la):
        g, a = kron_factors(la, name)
        h[sl, sl] = np.kron(g, a)
    return np.linalg.inv(h + la.fitted_prior_precision * np.eye(len(h)))


def map_logits(model, batches) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(b["input_ids"], b["attention_mask"]).logits for b in batches]).double().numpy()


def nll(probs, y) -> float:
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


# ------------------------------------------------------------------ 1. KFAC against the exact GGN
@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_kfac_equals_the_exact_ggn_block_for_one_input_at_one_position(kind, tiny_backbone, tiny_decoder):
    # at one position attention weighs its only key by 1, so queries get no gradient: adapt the value and the
    # feed-forward projections instead (d_in != d_out in the latter, so a transposed factor cannot pass)
    targets = ["value", "intermediate.dense"] if kind == "bert" else ["v_proj", "down_proj"]
    model = lora_model(tiny_backbone if kind == "bert" else tiny_decoder, kind, targets=targets)
    batch = {"input_ids": torch.tensor([[7]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
    batch["labels"] = torch.tensor([1])
    la = LaplaceLoRA(prior_precision=1.0, head=True).fit(model, [batch])
    assert [n for n, _, _ in la.layers][-1] == "head" and len(la.layers) > 8
    j = dense_jacobian(model, la, batch)[0]  # (C, P)
    p = softmax(map_logits(model, [batch])[0])
    ggn = j.T @ (np.diag(p) - np.outer(p, p)) @ j  # (P, P): the exact GGN of the cross-entropy
    # Llama's RMSNorm computes in float32 even in a float64 model, so its back-propagated vectors carry
    # float32 rounding (relative 1e-7, more on small entries), different for fit's cotangents and the dense
    # one-hot ones; a wrong factor or layout errs by O(1)
    rtol = 1e-9 if kind == "bert" else 1e-5
    for name, sl in blocks(la):
        g, a = kron_factors(la, name)
        exact = ggn[sl, sl]
        assert np.abs(exact).max() > 1e-7, name  # not a zero block (lora_B is not zero)
        np.testing.assert_allclose(np.kron(g, a), exact, rtol=rtol, atol=rtol * 0.1 * np.abs(exact).max())


def output_jacobian(model, module, batch):
    """The module's input (B, T, d_in) and d logits / d (its output at each position), found by adding a zero
    perturbation to that output (independent of the library's hooks): (B, C, T, d_out)."""
    seen = {}

    def run(eps):
        def hook(m, args, out):
            seen["input"], seen["shape"] = args[0].detach(), out.shape
            return out if eps is None else out + eps

        handle = module.register_forward_hook(hook)
        try:
            return model(batch["input_ids"], batch["attention_mask"]).logits
        finally:
            handle.remove()

    with torch.no_grad():
        run(None)
    jac = torch.autograd.functional.jacobian(run, torch.zeros(seen["shape"], dtype=torch.float64))  # (B, C, B, T, d)
    n = len(jac)
    return seen["input"].numpy(), jac[torch.arange(n), :, torch.arange(n)].numpy()  # each input's own block


def test_kfac_expand_factors_over_several_padded_inputs_by_hand(tiny_backbone):
    model = lora_model(tiny_backbone, seed=23)
    batch = random_batches(1, 4, seed=24)[0]
    assert (batch["attention_mask"] == 0).any()  # some padding, which A must leave out
    la = LaplaceLoRA(prior_precision=1.0).fit(model, [batch])
    p = softmax(map_logits(model, [batch]), axis=-1)  # (B, C)
    mask = batch["attention_mask"].numpy().astype(bool)  # (B, T)
    for name, _, _ in la.layers:
        a, g = output_jacobian(model, model.get_submodule(name), batch)  # (B, T, d_in), (B, C, T, d_out)
        lam = np.stack([np.diag(q) - np.outer(q, q) for q in p])  # (B, C, C)
        g_by_hand = np.einsum("bcto,bck,bktp->op", g, lam, g)  # sum over inputs and positions
        a_by_hand = a[mask].T @ a[mask] / mask.sum()  # mean over real positions
        g_fit, a_fit = kron_factors(la, name)
        assert np.abs(g_by_hand).max() > 1e-7, name
        np.testing.assert_allclose(g_fit, g_by_hand, rtol=1e-9, atol=1e-12 * np.abs(g_by_hand).max())
        np.testing.assert_allclose(a_fit, a_by_hand, rtol=1e-9, atol=1e-12 * np.abs(a_by_hand).max())


def test_sampled_fisher_matches_the_exact_one_on_average(tiny_backbone):
    model = lora_model(tiny_backbone, head_scale=0.05)  # no class is rare (p ~ 0.25 .. 0.45), so few samples do
    batch = random_batches(1, 2, seed=1)[0]
    exact = LaplaceLoRA(prior_precision=1.0).fit(model, [batch])
    sampled = LaplaceLoRA(prior_precision=1.0, fisher="sampled", fisher_samples=2000).fit(model, [batch])
    for name, _, _ in exact.layers:
        g_exact, a_exact = kron_factors(exact, name)
        g_sampled, a_sampled = kron_factors(sampled, name)
        np.testing.assert_allclose(a_sampled, a_exact, atol=1e-12)  # A does not depend on the labels
        # G from 2 x 2000 sampled labels: its relative error is ~ 1 / sqrt(2000 p) ~ 0.03 (measured 0.01 .. 0.05
        # over 8 seeds, all layers); 0.12 leaves room, and a G off by a factor or a sign errs by O(1)
        assert np.linalg.norm(g_sampled - g_exact) < 0.12 * np.linalg.norm(g_exact), name


# --------------------------------------------------- 2. GLM covariance against the dense computation
@pytest.mark.parametrize(("kind", "head"), [("bert", False), ("llama", True)])
def test_glm_covariance_equals_j_sigma_jt_with_the_dense_kronecker_ggn(kind, head, tiny_backbone, tiny_decoder):
    model = lora_model(tiny_backbone if kind == "bert" else tiny_decoder, kind, seed=2)
    left = kind == "llama"
    train = random_batches(3, 4, seed=3, left_pad=left)
    la = LaplaceLoRA(prior_precision=0.05, head=head).fit(model, train)
    test = random_batches(2, 3, seed=4, left_pad=left)  # several inputs, several positions, some padding
    mean, cov = la.logit_covariance(model, test)
    j = np.concatenate([dense_jacobian(model, la, b) for b in test])  # (N, C, P)
    sigma = dense_covariance(la)
    dense = j @ sigma @ j.transpose(0, 2, 1)  # (N, C, C)
    np.testing.assert_allclose(mean, map_logits(model, test), atol=1e-12)
    np.testing.assert_allclose(cov, dense, rtol=1e-8, atol=1e-10 * np.abs(dense).max())
    prior_only = j @ j.transpose(0, 2, 1) / la.fitted_prior_precision  # what a zero GGN would give
    assert np.abs(cov - prior_only).max() > 0.1 * np.abs(prior_only).max()  # the data shrink the covariance


# ------------------------------------------------------------------------ 3. samples against Sigma
def test_sampled_lora_weights_have_the_kfac_covariance(tiny_backbone):
    model = lora_model(tiny_backbone, seed=5)
    la = LaplaceLoRA(prior_precision=0.05).fit(model, random_batches(3, 4, seed=6))
    m = 20000
    draws = la.sample_deltas(m)
    x = np.concatenate([draws[name].reshape(m, -1) for name, _, _ in la.layers], axis=1)  # (M, P)
    sigma = dense_covariance(la)
    scale = np.sqrt(np.diag(sigma))  # (P,)
    # a normalised sample-covariance entry has standard error <= sqrt(2 / M) = 0.01 at M = 20000 (mean
    # known to be 0), and a normalised mean 1 / sqrt(M) = 0.007; over the P^2 / 2 = 131k entries of
    # P = 512 parameters the largest stays under 5 standard errors
    assert np.abs(x.mean(axis=0) / scale).max() < 0.04
    emp = x.T @ x / m
    assert np.abs((emp - sigma) / np.outer(scale, scale)).max() < 0.06


def test_mc_link_integrates_the_glm_gaussian_and_probit_is_its_closed_form(tiny_backbone):
    model = lora_model(tiny_backbone, seed=25)
    train, test = random_batches(2, 4, seed=26), random_batches(2, 4, seed=27)
    mc = LaplaceLoRA(link="mc", prior_precision=0.5, samples=20000).fit(model, train)
    probit = LaplaceLoRA(prior_precision=0.5).fit(model, train)
    mean, cov = mc.logit_covariance(model, test)
    var = np.diagonal(cov, axis1=1, axis2=2)  # (N, C)
    assert var.mean() > 1.0  # variances large enough for the link to matter
    rng = np.random.default_rng(99)
    by_hand = np.stack([softmax(rng.multivariate_normal(m, c, 20000), axis=-1).mean(0) for m, c in zip(mean, cov)])
    # two independent 20000-draw averages of probabilities: standard error of their difference < 0.005
    np.testing.assert_allclose(mc.predict(model, test), by_hand, atol=0.02)
    assert np.abs(by_hand - softmax(mean, axis=-1)).max() > 0.05  # the integral is not the MAP softmax
    # MacKay's probit: each logit scaled by its own variance (it ignores their correlations, so with strongly
    # correlated logits, as here, it can stray from the integral: 0.28 at most on these inputs)
    np.testing.assert_allclose(probit.predict(model, test), softmax(mean / np.sqrt(1 + np.pi / 8 * var), axis=-1))


def test_sampled_forwards_use_the_drawn_weights_and_put_the_trained_ones_back(tiny_backbone):
    model = lora_model(tiny_backbone, seed=7)
    la = LaplaceLoRA(link="sample", prior_precision=0.5, samples=3, seed=11).fit(model, random_batches(2, 4, seed=8))
    test = random_batches(1, 5, seed=9)
    before = map_logits(model, test)
    sampled = la.sample_probs(model, test)  # (M, N, C)
    np.testing.assert_array_equal(map_logits(model, test), before)  # the trained weights are back
    rng = np.random.default_rng(11)  # the draws, in the order sample_probs makes them
    flat = flat_params(model, la)
    for k in range(3):
        delta = la.sample_deltas(1, rng)
        shifted = flat + torch.from_numpy(np.concatenate([delta[n][0].ravel() for n, _, _ in la.layers]))
        with torch.no_grad():
            expected = softmax(call_with(model, la, shifted, test[0]).numpy(), axis=-1)
        np.testing.assert_allclose(sampled[k], expected, atol=1e-10)
    assert np.abs(sampled[0] - softmax(before, axis=-1)).max() > 1e-3  # the draws do move the predictions


# ------------------------------------------------------------------------------- 4. prior precision
@pytest.mark.parametrize("link", ["probit", "mc", "sample"])
def test_a_very_strong_prior_gives_the_map_predictive(link, tiny_backbone):
    model = lora_model(tiny_backbone, seed=10)
    la = LaplaceLoRA(link=link, prior_precision=1e12, samples=20).fit(model, random_batches(2, 4, seed=11))
    test = random_batches(2, 4, seed=12)
    np.testing.assert_allclose(la.predict(model, test), softmax(map_logits(model, test), axis=-1), atol=1e-5)


@pytest.mark.parametrize("link", ["probit", "mc", "sample"])
def test_a_temperature_divides_every_logit_the_predictive_uses(link, tiny_backbone):
    model = lora_model(tiny_backbone, seed=10)
    train, test = random_batches(2, 4, seed=11), random_batches(2, 4, seed=12)
    # a very strong prior: the predictive is temperature scaling itself, softmax(f / T)
    strong = LaplaceLoRA(link=link, prior_precision=1e12, samples=20, temperature=2.5).fit(model, train)
    np.testing.assert_allclose(strong.predict(model, test), softmax(map_logits(model, test) / 2.5, axis=-1), atol=1e-5)
    if link != "probit":
        return
    # a weak one: MacKay's probit on N(f / T, J Sigma J' / T^2), by hand from the untempered moments
    weak = LaplaceLoRA(prior_precision=0.5, temperature=2.5).fit(model, train)
    mean, cov = weak.logit_covariance(model, test)
    var = np.diagonal(cov, axis1=1, axis2=2) / 2.5**2
    by_hand = softmax(mean / 2.5 / np.sqrt(1 + np.pi / 8 * var), axis=-1)
    np.testing.assert_allclose(weak.predict(model, test), by_hand, rtol=1e-10)
    untempered = LaplaceLoRA(prior_precision=0.5).fit(model, train).predict(model, test)
    assert np.abs(untempered - by_hand).max() > 0.01  # the temperature changed the predictive
    with pytest.raises(ConfigError, match=r"temperature must be a finite number > 0.*got 0"):
        LaplaceLoRA(temperature=0)


def planted(model, n_batches, seed, noise=0.1) -> list[dict]:
    """Batches labelled by the model's own argmax, a share ``noise`` of them flipped to another class: the MAP
    is right 90% of the time, and with a large head it is near-certain every time (planted overconfidence)."""
    g = torch.Generator().manual_seed(seed)

    def labels(batch):
        with torch.no_grad():
            y = model(batch["input_ids"], batch["attention_mask"]).logits.argmax(-1)
        flip = torch.rand(len(y), generator=g) < noise
        return torch.where(flip, (y + torch.randint(1, 3, y.shape, generator=g)) % 3, y)

    return random_batches(n_batches, 16, seed=seed, labels=labels)


def test_the_evidence_picks_a_finite_prior_at_its_stationary_point(tiny_backbone):
    model = lora_model(tiny_backbone, seed=13, head_scale=2.0)
    train = planted(model, 4, seed=14)
    la = LaplaceLoRA().fit(model, train)
    lam = la.fitted_prior_precision
    assert 1e-4 < lam < 1e4 and la.prior_source == "evidence"
    # the evidence by hand: log p(y | theta) - lam/2 |theta|^2 + P/2 log lam - 1/2 log det(H + lam I)
    y = np.concatenate([b["labels"].numpy() for b in train])
    loglik = log_softmax(map_logits(model, train), axis=1)[np.arange(len(y)), y].sum()
    theta = flat_params(model, la).numpy()
    h = np.linalg.inv(dense_covariance(la)) - lam * np.eye(la.num_params)  # the dense KFAC GGN
    for value in (lam / 10, lam, lam * 10):
        logdet = np.linalg.slogdet(h + value * np.eye(len(h)))[1]
        by_hand = loglik - value / 2 * theta @ theta + len(theta) / 2 * np.log(value) - logdet / 2
        assert la.log_evidence(value) == pytest.approx(by_hand, rel=1e-7)
    assert la.log_evidence(lam) > max(la.log_evidence(lam * 1.5), la.log_evidence(lam / 1.5))
    # MacKay's identity at the optimum: lam |theta|^2 = sum_k h_k / (h_k + lam)
    eig = np.clip(np.linalg.eigvalsh((h + h.T) / 2), 0, None)
    assert lam * theta @ theta == pytest.approx(np.sum(eig / (eig + lam)), rel=1e-5)


def test_data_size_scales_the_fit_as_if_the_subsample_were_seen_that_many_times(tiny_backbone):
    model = lora_model(tiny_backbone, seed=13, head_scale=2.0)
    train = planted(model, 2, seed=14)
    n = sum(len(b["labels"]) for b in train)
    scaled = LaplaceLoRA(prior_precision=1.0).fit(model, train, data_size=3 * n)
    tripled = LaplaceLoRA(prior_precision=1.0).fit(model, train * 3)  # the GGN is a sum over inputs
    assert scaled.n_train == tripled.n_train == 3 * n
    assert scaled.log_likelihood == pytest.approx(tripled.log_likelihood, rel=1e-9)
    assert np.allclose(scaled._eigvals(), tripled._eigvals(), rtol=1e-6, atol=1e-12)
    once = LaplaceLoRA(prior_precision=1.0).fit(model, train)
    assert not np.allclose(once._eigvals(), scaled._eigvals())  # the scale is applied, not ignored
    with pytest.raises(ConfigError, match=rf"data_size must be an integer >= the {n} inputs"):
        LaplaceLoRA().fit(model, train, data_size=n - 1)


def test_validation_tuning_picks_a_finite_prior_and_beats_the_overconfident_map(tiny_backbone):
    model = lora_model(tiny_backbone, seed=15, head_scale=8.0)
    train, validation, test = planted(model, 4, seed=16), planted(model, 4, seed=17), planted(model, 4, seed=18)
    la = LaplaceLoRA().fit(model, train).tune_prior_precision(model, validation)
    lam = la.fitted_prior_precision
    assert TUNE_GRID[0] < lam < TUNE_GRID[-1] and la.prior_source == "validation"  # neither bound
    y = np.concatenate([b["labels"].numpy() for b in test])
    map_probs, probs = softmax(map_logits(model, test), axis=-1), la.predict(model, test)
    assert (probs.argmax(1) == y).mean() >= (map_probs.argmax(1) == y).mean() - 0.05  # about as accurate
    assert nll(probs, y) < nll(map_probs, y) - 0.5  # and far better calibrated on held-out inputs


def test_a_tuned_prior_on_the_edge_of_the_grid_is_said(tiny_backbone):
    model = lora_model(tiny_backbone, seed=15, head_scale=8.0)
    train, validation = planted(model, 4, seed=16), planted(model, 4, seed=17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default grid holds the optimum: nothing to say
        la = LaplaceLoRA().fit(model, train).tune_prior_precision(model, validation)
    lam = la.fitted_prior_precision
    assert TUNE_GRID[0] < lam < TUNE_GRID[-1] and la.grid_edge is None
    below, above = np.array([lam / 1e3, lam / 1e2]), np.array([lam * 1e2, lam * 1e3])
    with pytest.warns(UserWarning, match=r"is the edge of the grid .* the strongest: .* reaching higher precisions"):
        la.tune_prior_precision(model, validation, below)
    assert la.fitted_prior_precision == below[1] and la.grid_edge == "strongest"
    with pytest.warns(UserWarning, match=r"is the edge of the grid .* the weakest: pass a grid reaching lower"):
        la.tune_prior_precision(model, validation, above)
    assert la.fitted_prior_precision == above[0] and la.grid_edge == "weakest"


# ------------------------------------------------------------------------- 5. state, errors, evaluate
@pytest.mark.parametrize("link", ["probit", "sample"])
def test_state_round_trips_through_safetensors_and_json(link, tiny_backbone, tmp_path):
    from safetensors.numpy import load_file, save_file

    model = lora_model(tiny_backbone, seed=19)
    la = LaplaceLoRA(link=link, samples=4, head=True, temperature=1.7).fit(model, random_batches(2, 4, seed=20))
    la.grid_edge = "strongest"  # as a tuning on a grid too weak would leave it
    state = la.state()
    save_file(state["arrays"], str(tmp_path / "laplace_lora.safetensors"))
    (tmp_path / "laplace_lora.json").write_text(json.dumps(state["settings"]))
    again = LaplaceLoRA.from_state(
        {
            "settings": json.loads((tmp_path / "laplace_lora.json").read_text()),
            "arrays": load_file(str(tmp_path / "laplace_lora.safetensors")),
        }
    )
    test = random_batches(1, 4, seed=21)
    # the same posterior to the last bits: a loaded state recomputes what the fitted one cached, and BLAS may sum
    # those in another order (a difference of 1e-16 showed up on a fresh venv)
    np.testing.assert_allclose(again.predict(model, test), la.predict(model, test), rtol=1e-12, atol=1e-15)
    assert again.log_evidence(0.3) == pytest.approx(la.log_evidence(0.3), rel=1e-12) and again.layers == la.layers
    assert again.temperature == 1.7 and again.grid_edge == "strongest"
    with pytest.raises(LaplaceArrayError, match=r"inconsistent LaplaceLoRA state"):
        LaplaceLoRA.from_state({"settings": state["settings"], "arrays": {}})


def test_errors_name_the_value_and_the_fix(tiny_backbone):
    plain = CaveatModel(AutoModel.from_pretrained(tiny_backbone), 3, task=Task.TEXT_CLASSIFICATION).eval()
    batches = random_batches(1, 2, seed=22)
    with pytest.raises(ConfigError, match=r"no LoRA parameters.*model\.peft\.method=lora.*method laplace"):
        LaplaceLoRA().fit(plain, batches)
    model = lora_model(tiny_backbone)
    with pytest.raises(NotFittedError, match=r"call fit\(model, train batches\) first"):
        LaplaceLoRA().predict(model, batches)
    with pytest.raises(LaplaceArrayError, match=r"labels: class ids in \[0, 3\)"):
        LaplaceLoRA().fit(model, [{k: v for k, v in batches[0].items() if k != "labels"}])
    model.task = Task.TOKEN_CLASSIFICATION
    with pytest.raises(ConfigError, match=r"text classification.*labels tokens"):
        LaplaceLoRA().fit(model, batches)
    fitted = LaplaceLoRA(prior_precision=1.0).fit(lora_model(tiny_backbone), batches)
    with pytest.raises(ConfigError, match=r"differ from those LaplaceLoRA was fitted on"):
        fitted.predict(lora_model(tiny_backbone, targets=["query"]), batches)  # another adapter
    with pytest.raises(ConfigError, match=r"link must be one of"):
        LaplaceLoRA(link="laplace")


@pytest.fixture(scope="module")
def lora_run(tiny_decoder, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("laplace-lora") / "run"
    overrides = tiny_overrides(tiny_decoder, text_data, epochs=6)
    overrides += ["model.peft.method=lora", "model.peft.r=4", "train.lr=1e-2"]
    with one_thread():
        Trainer(load_config(overrides=overrides), out, progress=False).fit()
    return out


def test_evaluate_reports_laplace_lora_like_the_other_methods(lora_run, tmp_path):
    ood = tmp_path / "ood.txt"
    ood.write_text("".join(f"{w} the my a\n" for w in ("rome", "paris", "bob", "alice", "smith")))
    result = evaluate_run(lora_run, "test", methods=["least_confidence", "laplace_lora"], ood=[str(ood)], write=False)
    row = result["methods"]["laplace_lora"]
    assert row["score"] == "entropy"
    assert {"nll", "ece", "brier", "aurc", "cost_ratio"} <= set(row)
    assert set(row["ood_auroc"]) == set(row["fpr95"]) == {str(ood)}
    assert row["cost_ratio"] > 0 and np.isfinite(row["nll"])
    assert row["nll"] != result["methods"]["least_confidence"]["nll"]  # its predictive is not the MAP softmax


def test_evaluate_fits_laplace_lora_on_the_whole_train_split_and_tunes_it_on_calibration(lora_run, monkeypatch):
    from caveat.evaluation import methods as evaluation_methods

    fitted = {}
    tune = LaplaceLoRA.tune_prior_precision

    def spy(self, model, batches, grid=None):
        fitted["tuned_on"] = sum(len(b["labels"]) for b in batches)
        fitted["la"] = self
        return tune(self, model, batches, grid)

    monkeypatch.setattr(LaplaceLoRA, "tune_prior_precision", spy)
    monkeypatch.setattr(evaluation_methods, "LAPLACE_LORA_TRAIN", 8)  # a subsample of train, scaled to all of it
    evaluate_run(lora_run, "test", methods=["laplace_lora"], write=False)
    run = open_run(lora_run)
    la = fitted["la"]
    assert la.prior_source == "validation"
    assert la.n_train == len(resolve_split(run, "train"))
    assert fitted["tuned_on"] == min(len(resolve_split(run, "calibration")), evaluation_methods.LAPLACE_LORA_TUNE)


def test_on_a_calibrated_run_laplace_lora_is_built_on_the_temperature_scaled_model(lora_run, monkeypatch, tmp_path):
    import shutil

    from caveat.calibration.run import calibrate_run

    run_dir = tmp_path / "calibrated"
    shutil.copytree(lora_run, run_dir)
    with one_thread():
        temperature = calibrate_run(run_dir)["temperature"]
    assert abs(temperature - 1.0) > 0.01
    fitted = {}
    tune = LaplaceLoRA.tune_prior_precision

    def spy(self, model, batches, grid=None):
        fitted["la"] = self
        return tune(self, model, batches, grid)

    monkeypatch.setattr(LaplaceLoRA, "tune_prior_precision", spy)
    row = evaluate_run(run_dir, "test", methods=["laplace_lora"], write=False)["methods"]["laplace_lora"]
    la = fitted["la"]
    assert la.temperature == pytest.approx(temperature)
    # the row says what the tuning chose on the calibration split
    chosen = {"prior_precision": la.fitted_prior_precision, "temperature": la.temperature, "grid_edge": la.grid_edge}
    assert row["fitted"] == chosen
    assert row["fitted"]["prior_precision"] in TUNE_GRID


def test_laplace_lora_method_refuses_a_run_without_lora(tiny_backbone, text_data, tmp_path):
    config = load_config(overrides=tiny_overrides(tiny_backbone, text_data))
    run = Run(path=tmp_path, info={"task": "text-classification"}, config=config, labels=["first", "second", "third"])
    ctx = Context(run, None, ["alpha"], {}, None, None, {}, 1.0)
    with pytest.raises(ConfigError, match=r"model\.peft\.method=lora.*model\.peft\.method=none.*'laplace'"):
        METHODS.get("laplace_lora")(ctx)
