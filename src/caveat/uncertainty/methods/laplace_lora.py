"""Laplace-LoRA: a post-hoc Laplace posterior over a model's LoRA weights (KFAC), pushed to the logits.

Yang, Robeyns, Wang & Aitchison (2024), "Bayesian Low-rank Adaptation for Large Language Models", ICLR.
KFAC: Ritter, Botev & Barber (2018), "A Scalable Laplace Approximation for Neural Networks", ICLR; for a layer
shared over positions, the "expand" variant of Eschenhagen, Immer, Turner, Schneider & Hennig (2023),
"Kronecker-Factored Approximate Curvature for Modern Neural Network Architectures", NeurIPS. Linearised (GLM)
predictive: Immer, Korzepa & Bauer (2021), "Improving predictions of Bayesian neural nets via local
linearization", AISTATS. Probit link: MacKay (1992), Neural Computation.

**Parameters.** Every ``nn.Linear`` of the active LoRA adapter (peft's ``lora_A.<adapter>``, weight (r, d_in),
and ``lora_B.<adapter>``, (d_out, r)) and, with ``head=True``, the classifier head. A layer with a bias packs
``[W | b]`` (d_out, d_in + 1). The posterior vector is each layer's matrix flattened row-major, layers in the
order of ``LaplaceLoRA.layers``; the prior is ``N(0, I / lam)``.

**Curvature.** A linear layer ``y_t = W a_t`` applied at positions ``t`` has, for logit ``c``, the Jacobian
``J_c = sum_t g_tc a_t'`` (d_out, d_in) with ``g_tc = d f_c / d y_t``. The GGN of the summed cross-entropy is
``sum_n J' Lambda_n J`` with ``Lambda = diag(p) - p p' = L L'``, ``L[:, k] = sqrt(p_k) (e_k - p)``. ``fisher="exact"``
back-propagates the C columns of ``L`` (C backward passes per batch); ``fisher="sampled"`` the S vectors
``(p - e_y) / sqrt(S)`` with labels ``y`` drawn from the model's predictive (S passes; unbiased). KFAC-expand
per layer: ``H_l ~ G_l kron A_l``, ``G = sum_{n, t, k} d d'`` (``d_tk = sum_c g_tc L_ck``; summed) and ``A`` the
mean of ``a a'`` over real (unpadded) positions (averaged), exact for one input with one position. Layers are
independent (block-diagonal), and ``Sigma_l = (Q_G kron Q_A) diag(1 / (s_G kron s_A + lam)) (Q_G kron Q_A)'``.

**Predictive.** ``logits ~ N(f(x), J Sigma J')``: per layer ``M_c = Q_G' J_c Q_A`` (``J_c`` summed over positions
before projecting) and ``(J Sigma J')_{cc'} = sum_l sum_ij M_c[i, j] M_c'[i, j] / (s_G[i] s_A[j] + lam)``.
``link="probit"``: ``softmax(f / sqrt(1 + pi/8 var))``; ``"mc"``: the mean softmax of ``samples`` logit draws;
``"sample"``: the mean softmax of ``samples`` forwards with LoRA weights drawn from the KFAC posterior (not
linearised; for many classes, where C backward passes per input cost too much). With ``temperature=T`` every link
divides the logits by ``T`` first (the posterior on a temperature-scaled model; ``LaplaceLoRA``'s parameters).

**Cost per input** (F = one forward; a backward pass costs about 2 F): ``fit``: F + C backward passes (exact) or
S (sampled), plus ``O(T (d_out^2 + d_in^2))`` per layer and pass for the factors. ``probit`` / ``mc``: F + C
backward passes, plus ``O(C (d_out^2 d_in + d_out d_in^2))`` per layer to project, and ``8 B C P`` bytes per
batch of B (P = posterior size). ``sample``: K = ``samples`` forwards, no backward; each draw of the weights
costs ``O(d_out^2 d_in + d_out d_in^2)`` per layer, once per call, shared by all inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from caveat.errors import ConfigError, NotCalibratedError
from caveat.types import Task
from caveat.uncertainty.errors import NotFittedError
from caveat.uncertainty.methods.laplace import LaplaceArrayError, evidence_optimum, positive_number
from caveat.uncertainty.methods.lora_kfac import (
    Batch,
    assign,
    differentiable,
    eigen_factors,
    hooked_forward,
    model_inputs,
    output_grads,
    packed,
    position_weights,
    posterior_layers,
)

LINKS = ("probit", "mc", "sample")
FISHERS = ("exact", "sampled")
TUNE_GRID = np.logspace(-3, 7, 41)  # (L,) prior precisions tried by tune_prior_precision
FACTORS = ("g_eigvals", "g_eigvecs", "a_eigvals", "a_eigvecs")


class LaplaceLoRANotFittedError(NotFittedError, NotCalibratedError):
    """``LaplaceLoRA`` was used before ``fit`` (catchable as either parent)."""


def _logit_draws(mean: np.ndarray, cov: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` draws from ``N(mean, cov)``: mean (..., C), cov (..., C, C) -> (m, ..., C). The covariance may be
    singular (the shift of all logits alike), so its root comes from ``eigh``, not Cholesky."""
    w, u = np.linalg.eigh(cov)
    root = u * np.sqrt(np.clip(w, 0.0, None))[..., None, :]  # (..., C, C): cov = root root'
    eps = rng.standard_normal((m, *mean.shape))
    return mean + np.einsum("...ck,m...k->m...c", root, eps)


def _nll(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean negative log-likelihood: probs (N, ..., C), y (N,) -> (...)."""
    picked = np.take_along_axis(probs, y.reshape(-1, *([1] * (probs.ndim - 1))), axis=-1)[..., 0]
    return -np.log(np.clip(picked, 1e-12, None)).mean(axis=0)


class LaplaceLoRA:
    """Laplace posterior over the LoRA weights of a fine-tuned classifier, KFAC per linear layer (module
    docstring: the layout, the formulas and the cost of each link).

    Parameters
    ----------
    link : {"probit", "mc", "sample"}, default "probit"
        The predictive: the linearised model's logit Gaussian through the probit approximation, or averaged
        over ``samples`` logit draws; or ``samples`` forwards with sampled LoRA weights (no backward passes).
    prior_precision : float > 0 or None, default None
        ``lam`` of the prior ``N(0, I / lam)``; None chooses it by the Laplace marginal likelihood (as the
        paper does). ``tune_prior_precision`` chooses it by held-out NLL instead.
    samples : int >= 1, default 100
        Logit draws (``link="mc"``) or weight draws, i.e. forwards per input (``link="sample"``).
    seed : int, default 0
        Seed of the generators made afresh by each call, so repeated calls agree.
    head : bool, default False
        Also put the classifier head (``model.head``, with its bias) in the posterior.
    fisher : {"exact", "sampled"}, default "exact"
        The GGN's output curvature in ``fit``: exact over the C classes (C backward passes per batch), or
        ``fisher_samples`` labels drawn from the predictive per input (that many passes; for large C).
    fisher_samples : int >= 1, default 1
        Labels per input for ``fisher="sampled"``.
    temperature : float > 0, default 1.0
        Every logit the predictive uses is divided by it: the linearised model's logit Gaussian becomes
        ``N(f / T, J Sigma J' / T^2)``, and each sampled forward's logits are divided by ``T``. Give a run's
        calibration temperature to put the posterior on the temperature-scaled model; as the prior precision
        grows the predictive tends to ``softmax(f / T)``, temperature scaling itself, so a prior tuned by
        held-out NLL on a grid reaching 1e7 adds spread only where the held-out inputs ask for it. The curvature
        is the untempered model's (``fit`` is unchanged).
    """

    def __init__(
        self,
        *,
        link: str = "probit",
        prior_precision: float | None = None,
        samples: int = 100,
        seed: int = 0,
        head: bool = False,
        fisher: str = "exact",
        fisher_samples: int = 1,
        temperature: float = 1.0,
    ) -> None:
        if link not in LINKS:
            raise ConfigError(f"link must be one of {LINKS}; got {link!r}")
        if fisher not in FISHERS:
            raise ConfigError(f"fisher must be one of {FISHERS}; got {fisher!r}")
        if prior_precision is not None and not positive_number(prior_precision):
            raise ConfigError(
                f"prior_precision must be a finite number > 0, or None to fit it; got {prior_precision!r}"
            )
        for name, value in (("samples", samples), ("fisher_samples", fisher_samples)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer; got {seed!r}")
        if not positive_number(temperature):
            raise ConfigError(
                f"temperature must be a finite number > 0 (1.0: none; a calibrated run's own temperature to put the "
                f"posterior on the temperature-scaled model); got {temperature!r}"
            )
        self.temperature = float(temperature)
        self.link, self.samples, self.seed, self.head = link, int(samples), int(seed), bool(head)
        self.fisher, self.fisher_samples = fisher, int(fisher_samples)
        self.prior_precision = None if prior_precision is None else float(prior_precision)
        self.layers: list[tuple[str, int, int]] = []  # (module name, d_out, d_in (+1 with a bias)), posterior order
        self.factors: dict[str, dict[str, np.ndarray]] = {}  # per layer: eigendecompositions of G and A
        self._lam: float | None = None
        self.prior_source: str | None = None  # "given", "evidence" or "validation"
        self.grid_edge: str | None = None  # "strongest" / "weakest": the tuned prior is that end of its grid
        self.log_likelihood: float | None = None  # log p(y | theta_MAP) summed over the fit inputs
        self.theta_sq: float | None = None  # |theta_MAP|^2 over the posterior's parameters
        self.n_train: int | None = None
        self.num_classes: int | None = None

    # ------------------------------------------------------------------ fit
    @property
    def is_fitted(self) -> bool:
        return self._lam is not None

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise LaplaceLoRANotFittedError("LaplaceLoRA is not fitted; call fit(model, train batches) first")

    @property
    def fitted_prior_precision(self) -> float:
        """The prior precision ``lam`` in use: given, chosen by the evidence, or tuned on held-out data."""
        self._require_fit()
        return self._lam

    @property
    def num_params(self) -> int:
        """P, the number of parameters in the posterior."""
        return sum(d_out * d_in for _, d_out, d_in in self.layers)

    def _layers_of(self, model: nn.Module) -> dict[str, nn.Linear]:
        if getattr(model, "task", Task.TEXT_CLASSIFICATION) is Task.TOKEN_CLASSIFICATION:
            raise ConfigError(
                "Laplace-LoRA is for text classification; this model labels tokens (use MC dropout for NER runs)"
            )
        layers = posterior_layers(model, head=self.head)
        shapes = [(n, m.out_features, m.in_features + (m.bias is not None)) for n, m in layers.items()]
        if self.layers and shapes != self.layers:
            raise ConfigError(
                f"the model's posterior layers ({len(shapes)}) differ from those LaplaceLoRA was fitted on "
                f"({len(self.layers)}, e.g. {self.layers[0][0]}); pass the model it was fitted on"
            )
        return layers

    def fit(self, model: nn.Module, batches: Iterable[Batch], *, data_size: int | None = None) -> LaplaceLoRA:
        """Compute the KFAC factors at the trained weights and (when not given) the prior precision.

        Parameters
        ----------
        model : a classifier (``CaveatModel``) whose ``forward(input_ids, attention_mask)`` returns ``.logits``
            (B, C) and whose encoder carries a peft LoRA adapter. Its weights are the MAP (post-hoc Laplace).
        batches : dicts with ``input_ids`` (B, T), ``attention_mask`` (B, T) and ``labels`` (B,) class ids.
        data_size : int, optional
            The size N of the training set when ``batches`` hold a subsample of n < N of its inputs. The GGN and
            the log-likelihood are sums over the training set, so both are scaled by N / n (unbiased for a
            uniform subsample). Without it a posterior fitted on 1,000 of 67,000 inputs is 67 times too broad,
            and the predictive under-confident. ``n_train`` then reports N.

        Returns
        -------
        self
        """
        self.layers, self._lam = [], None
        layers = self._layers_of(model)
        g, a, loglik, n_seen = self._accumulate(model, batches, layers)
        if n_seen == 0:
            raise LaplaceArrayError("batches held no inputs; pass the training batches (input_ids, labels)")
        if data_size is not None:
            if isinstance(data_size, bool) or not isinstance(data_size, (int, np.integer)) or data_size < n_seen:
                raise ConfigError(
                    f"data_size must be an integer >= the {n_seen} inputs the batches held (the training set's "
                    f"size); got {data_size!r}"
                )
            scale = data_size / n_seen
            g, loglik, n_seen = {n: v * scale for n, v in g.items()}, loglik * scale, int(data_size)
        self.layers = [(n, m.out_features, m.in_features + (m.bias is not None)) for n, m in layers.items()]
        self.factors = {n: eigen_factors(g[n], a[n]) for n in layers}
        self.theta_sq = float(sum(packed(m).pow(2).sum() for m in layers.values()))
        self.log_likelihood, self.n_train = loglik, n_seen
        if self.prior_precision is not None:
            self._lam, self.prior_source = self.prior_precision, "given"
        else:
            self._lam = evidence_optimum(self.log_evidence, self._eigvals(), self.theta_sq, stacklevel=3)
            self.prior_source = "evidence"
        return self

    def _accumulate(self, model: nn.Module, batches: Iterable[Batch], layers: dict[str, nn.Linear]):
        """KFAC-expand factors over the batches: G (d_out, d_out) summed over inputs, positions and the output
        curvature's root; A (d_in, d_in) averaged over real positions. Also log p(y | theta) and N."""
        g = {n: torch.zeros(m.out_features, m.out_features, dtype=torch.float64) for n, m in layers.items()}
        width = {n: m.in_features + (m.bias is not None) for n, m in layers.items()}
        a = {n: torch.zeros(k, k, dtype=torch.float64) for n, k in width.items()}
        positions = dict.fromkeys(layers, 0.0)
        loglik, n_seen = 0.0, 0
        generator = torch.Generator().manual_seed(self.seed)
        with differentiable(model, layers):
            for batch in batches:
                logits, acts, outputs = hooked_forward(model, batch, layers)
                logp = torch.log_softmax(logits.detach().double().cpu(), dim=-1)  # (B, C)
                self.num_classes = logits.shape[1]
                y = torch.as_tensor(self._labels(batch, logits.shape[1]))
                loglik, n_seen = loglik + float(logp[torch.arange(len(y)), y].sum()), n_seen + len(y)
                for grads in output_grads(logits, outputs, self._fisher_cotangents(logp.exp(), generator)):
                    for name, d in grads.items():  # d: (B, T, d_out)
                        g[name] += torch.einsum("bto,btp->op", d, d)
                for name in layers:
                    w = position_weights(acts[name], batch["attention_mask"])  # (B, T)
                    a[name] += torch.einsum("bti,bt,btj->ij", acts[name], w, acts[name])
                    positions[name] += float(w.sum())
        return g, {n: a[n] / max(positions[n], 1.0) for n in layers}, loglik, n_seen

    @staticmethod
    def _labels(batch: Batch, c: int) -> np.ndarray:
        """The batch's labels as (B,) class ids in [0, C), else LaplaceArrayError."""
        n = len(batch["input_ids"])
        y = np.asarray(torch.as_tensor(batch["labels"]).cpu()) if "labels" in batch else None
        ids = y is not None and y.shape == (n,) and np.issubdtype(y.dtype, np.integer)
        if not ids or (n and not 0 <= y.min() <= y.max() < c):
            got = "none" if y is None else f"{y.dtype} {y.shape}" + (f" in [{y.min()}, {y.max()}]" if ids else "")
            raise LaplaceArrayError(f"each batch needs labels: class ids in [0, {c}) of shape ({n},); got {got}")
        return y

    def _fisher_cotangents(self, p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Columns of a root of the output curvature: p (B, C) -> (K, B, C) with sum_k v_k v_k' = Lambda
        (exact, K = C) or equal to it in expectation (sampled, K = fisher_samples)."""
        c = p.shape[1]
        if self.fisher == "exact":
            eye = torch.eye(c, dtype=p.dtype)
            return p.sqrt().T[:, :, None] * (eye[:, None, :] - p[None])  # [k, b, c] = sqrt(p_bk) (d_kc - p_bc)
        y = torch.multinomial(p, self.fisher_samples, replacement=True, generator=generator).T  # (S, B)
        return (p[None] - nn.functional.one_hot(y, c).to(p.dtype)) / np.sqrt(self.fisher_samples)

    # ------------------------------------------------------------ evidence
    def _eigvals(self) -> np.ndarray:
        """Eigenvalues of the block-diagonal KFAC GGN, in the posterior's order; ``(P,)``."""
        return np.concatenate(
            [np.outer(self.factors[n]["g_eigvals"], self.factors[n]["a_eigvals"]).ravel() for n, _, _ in self.layers]
        )

    def log_evidence(self, prior_precision: float | np.ndarray | None = None) -> float | np.ndarray:
        """Laplace log marginal likelihood at ``prior_precision`` (default: the fitted one; scalar or array):
        ``log p(y | theta) - lam/2 |theta|^2 + P/2 log lam - 1/2 log det(H + lam I)``, H the KFAC GGN."""
        if not self.factors:  # fit calls this before it sets the precision
            self._require_fit()
        lam = np.asarray(self._lam if prior_precision is None else prior_precision, dtype=np.float64)
        h = self._eigvals()
        logdet = np.log(h[:, None] + lam.reshape(1, -1)).sum(axis=0).reshape(lam.shape)
        out = self.log_likelihood - 0.5 * lam * self.theta_sq + 0.5 * h.size * np.log(lam) - 0.5 * logdet
        return float(out) if out.ndim == 0 else out

    # ---------------------------------------------------------- predictive
    def _projected(self, model: nn.Module, batch: Batch, layers: dict[str, nn.Linear]):
        """MAP logits (B, C) and the logits' Jacobian on the posterior's eigenbasis, R (B, C, P), so that
        ``J Sigma J' = R diag(1 / (s + lam)) R'``: C backward passes, one per class."""
        logits, acts, outputs = hooked_forward(model, batch, layers)
        b, c = logits.shape
        onehot = torch.eye(c, dtype=torch.float64)[:, None, :].expand(c, b, c)  # (C, B, C): class k in pass k
        jac = {name: [] for name, _, _ in self.layers}
        for grads in output_grads(logits, outputs, onehot):
            for name, d in grads.items():  # the Jacobian of one logit: (B, d_out, d_in), summed over positions
                jac[name].append(torch.einsum("bto,bti->boi", d, acts[name]).numpy())
        parts = []
        for name, _, _ in self.layers:
            f = self.factors[name]
            j = np.stack(jac[name], axis=1)  # (B, C, d_out, d_in)
            parts.append((f["g_eigvecs"].T @ j @ f["a_eigvecs"]).reshape(b, c, -1))  # (B, C, P_l)
        return logits.detach().double().cpu().numpy(), np.concatenate(parts, axis=2)

    def _moments(self, model: nn.Module, batches: Iterable[Batch], lams: np.ndarray) -> Iterator[tuple]:
        """Per batch, the MAP logits (B, C) and the GLM logit covariances at each precision, (B, L, C, C)."""
        self._require_fit()
        layers = self._layers_of(model)
        h = self._eigvals()  # (P,)
        with differentiable(model, layers):
            for batch in batches:
                mean, r = self._projected(model, batch, layers)
                rt = r.transpose(0, 2, 1)  # (B, P, C)
                yield mean, np.stack([(r / (h + lam)) @ rt for lam in lams], axis=1)  # (B, L, C, C)

    def logit_covariance(self, model: nn.Module, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``f(x)`` and covariance ``J Sigma J'`` of the linearised model's logits; ``(N, C), (N, C, C)``."""
        self._require_fit()
        moments = list(self._moments(model, batches, np.array([self._lam])))
        return np.concatenate([m for m, _ in moments]), np.concatenate([c[:, 0] for _, c in moments])

    def _glm_probs(self, mean: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The predictive of a logit Gaussian under the probit or mc link: (..., C), (..., C, C) -> (..., C)."""
        mean, cov = mean / self.temperature, cov / self.temperature**2
        if self.link == "probit":
            var = np.diagonal(cov, axis1=-2, axis2=-1)
            return softmax(mean / np.sqrt(1.0 + np.pi / 8.0 * var), axis=-1)
        return softmax(_logit_draws(mean, cov, self.samples, rng), axis=-1).mean(axis=0)

    def predict(self, model: nn.Module, batches: Iterable[Batch]) -> np.ndarray:
        """Predictive class probabilities under the chosen ``link``, inputs in batch order; ``(N, C)``."""
        self._require_fit()
        if self.link == "sample":
            return self.sample_probs(model, batches).mean(axis=0)
        rng = np.random.default_rng(self.seed)
        moments = self._moments(model, batches, np.array([self._lam]))
        return np.concatenate([self._glm_probs(mean, cov[:, 0], rng) for mean, cov in moments])

    def sample_probs(self, model: nn.Module, batches: Iterable[Batch], samples: int | None = None) -> np.ndarray:
        """``(M, N, C)`` sampled predictions (the layout of ``Predictions.probs``): forwards with weights drawn
        from the posterior (``link="sample"``), else the softmax of logit draws from the linearised model."""
        self._require_fit()
        m = self.samples if samples is None else samples
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ConfigError(f"samples must be an integer >= 1; got {samples!r}")
        rng = np.random.default_rng(self.seed)
        if self.link == "sample":
            return self._weight_sampled(model, list(batches), int(m), rng)
        t = self.temperature
        moments = self._moments(model, batches, np.array([self._lam]))
        return np.concatenate(
            [softmax(_logit_draws(mu / t, cov[:, 0] / t**2, int(m), rng), axis=-1) for mu, cov in moments], 1
        )

    def sample_deltas(self, samples: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Draws of ``theta - theta_MAP`` from the KFAC posterior, ``{layer: (M, d_out, d_in (+1))}`` (bias
        last): ``(Q_G kron Q_A) diag(1 / sqrt(s_G kron s_A + lam)) z`` with ``z ~ N(0, I)``, i.e. in matrix form
        ``Q_G (Z / sqrt(s_G s_A' + lam)) Q_A'`` (matrix-normal as lam -> 0). Layers are independent."""
        self._require_fit()
        rng = np.random.default_rng(self.seed) if rng is None else rng
        out = {}
        for name, d_out, d_in in self.layers:
            f = self.factors[name]
            scale = 1.0 / np.sqrt(np.outer(f["g_eigvals"], f["a_eigvals"]) + self._lam)  # (d_out, d_in)
            z = rng.standard_normal((samples, d_out, d_in)) * scale
            out[name] = f["g_eigvecs"] @ z @ f["a_eigvecs"].T  # (M, d_out, d_in)
        return out

    @torch.no_grad()
    def _weight_sampled(self, model: nn.Module, batches: list[Batch], m: int, rng) -> np.ndarray:
        """Softmax of ``m`` forwards over all batches, each with its own posterior draw; ``(m, N, C)``. The
        trained weights are put back afterwards, also on error."""
        layers = self._layers_of(model)
        saved = {n: packed(module) for n, module in layers.items()}  # (d_out, d_in (+1)) float64
        training = model.training
        model.eval()
        probs = []
        try:
            for _ in range(m):
                draw = self.sample_deltas(1, rng)
                for name, module in layers.items():
                    assign(module, saved[name] + torch.from_numpy(draw[name][0]))
                logits = torch.cat([model(**model_inputs(model, b)).logits for b in batches])  # (N, C)
                probs.append(softmax(logits.double().cpu().numpy() / self.temperature, axis=-1))
        finally:
            for name, module in layers.items():
                assign(module, saved[name])
            model.train(training)
        return np.stack(probs)

    def tune_prior_precision(
        self, model: nn.Module, batches: Iterable[Batch], grid: np.ndarray | None = None
    ) -> LaplaceLoRA:
        """Choose the prior precision by the NLL of ``predict`` on held-out labelled batches over ``grid``
        (default ``TUNE_GRID``, 1e-3 .. 1e7), keeping the fitted factors. The probit and mc links need one
        Jacobian pass for the whole grid; ``link="sample"`` runs ``samples`` forwards per input per value.
        Returns self."""
        self._require_fit()
        grid = TUNE_GRID if grid is None else np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ConfigError(f"grid must be a non-empty 1-D array of positive precisions; got {grid!r}")
        batches = list(batches)
        y = np.concatenate([self._labels(b, self.num_classes) for b in batches])
        if self.link == "sample":
            nll, previous = [], self._lam
            try:
                for lam in grid:
                    self._lam = float(lam)
                    nll.append(_nll(self.predict(model, batches), y))
            finally:
                self._lam = previous
            nll = np.array(nll)
        else:
            rng = np.random.default_rng(self.seed)
            probs = [
                self._glm_probs(np.broadcast_to(mu[:, None], cov.shape[:-1]), cov, rng)  # (B, L, C)
                for mu, cov in self._moments(model, batches, grid)
            ]
            nll = _nll(np.concatenate(probs), y)  # (L,)
        best = int(np.argmin(nll))
        self._lam = self.prior_precision = float(grid[best])
        self.prior_source = "validation"
        self.grid_edge = None
        if grid.size > 1 and best in (0, grid.size - 1):
            self.grid_edge = "strongest" if best == grid.size - 1 else "weakest"
            what = (
                "the strongest: the held-out inputs ask for less posterior spread than any value allows, and as the "
                "precision grows the predictive tends to the MAP's (temperature scaling itself with a temperature); "
                "pass a grid reaching higher precisions to see where it stops"
                if best == grid.size - 1
                else "the weakest: pass a grid reaching lower precisions"
            )
            warnings.warn(
                f"the tuned prior precision {self._lam:.3g} is the edge of the grid ({grid.min():.3g} .. "
                f"{grid.max():.3g}), {what}",
                stacklevel=2,
            )
        return self

    # ---------------------------------------------------------------- state
    def state(self) -> dict:
        """``{"settings": JSON-able dict, "arrays": {name: ndarray}}``; the arrays suit
        ``safetensors.numpy.save_file``: per layer ``<layer>.g_eigvals`` (d_out,), ``<layer>.g_eigvecs``
        (d_out, d_out), ``<layer>.a_eigvals`` (d_in,), ``<layer>.a_eigvecs`` (d_in, d_in). The weights are not
        stored: they are the model's (the MAP), and ``predict`` checks the layers match."""
        self._require_fit()
        settings = {
            "link": self.link,
            "samples": self.samples,
            "seed": self.seed,
            "head": self.head,
            "fisher": self.fisher,
            "fisher_samples": self.fisher_samples,
            "temperature": self.temperature,
            "prior_precision": self.prior_precision,
            "fitted_prior_precision": self._lam,
            "prior_source": self.prior_source,
            "grid_edge": self.grid_edge,
            "log_likelihood": self.log_likelihood,
            "theta_sq": self.theta_sq,
            "n_train": self.n_train,
            "num_classes": self.num_classes,
            "layers": [list(layer) for layer in self.layers],
        }
        arrays = {f"{n}.{k}": np.ascontiguousarray(self.factors[n][k]) for n, _, _ in self.layers for k in FACTORS}
        return {"settings": settings, "arrays": arrays}

    @classmethod
    def from_state(cls, state: dict) -> LaplaceLoRA:
        """Rebuild a fitted object from :meth:`state` (arrays e.g. from ``safetensors.numpy.load_file``)."""
        settings, arrays = state.get("settings", {}), state.get("arrays", {})
        keys = ("link", "samples", "seed", "head", "fisher", "fisher_samples", "prior_precision")
        needed = {*keys, "fitted_prior_precision", "prior_source", "log_likelihood", "theta_sq", "n_train", "layers"}
        missing = sorted(needed - set(settings))
        if missing:
            raise ConfigError(f"LaplaceLoRA state lacks settings {missing}; save it with state()")
        la = cls(**{k: settings[k] for k in keys}, temperature=settings.get("temperature", 1.0))  # 1.0: older states
        la.layers = [(str(n), int(o), int(i)) for n, o, i in settings["layers"]]
        want = {f"{n}.{k}": shape for n, o, i in la.layers for k, shape in zip(FACTORS, ((o,), (o, o), (i,), (i, i)))}
        bad = {k: (None if k not in arrays else np.shape(arrays[k])) for k in want}
        bad = {k: got for k, got in bad.items() if got != want[k]}
        lam = settings["fitted_prior_precision"]
        if bad or not la.layers or not (isinstance(lam, (int, float)) and lam > 0):
            raise LaplaceArrayError(
                f"inconsistent LaplaceLoRA state: arrays {dict(list(bad.items())[:3])} (expected shapes "
                f"{dict(list(want.items())[:3])}...), fitted_prior_precision {lam!r}; refit and save with state()"
            )
        la.factors = {
            n: {k: np.asarray(arrays[f"{n}.{k}"], dtype=np.float64) for k in FACTORS} for n, _, _ in la.layers
        }
        la._lam, la.prior_source = float(lam), settings["prior_source"]
        la.grid_edge = settings.get("grid_edge")  # None: states saved before it was kept
        la.log_likelihood, la.theta_sq = float(settings["log_likelihood"]), float(settings["theta_sq"])
        la.n_train, la.num_classes = int(settings["n_train"]), settings.get("num_classes")
        return la
