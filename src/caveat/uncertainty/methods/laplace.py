"""Last-layer Laplace approximation for a linear softmax head (Daxberger et al. 2021).

The head is ``logits = features @ W.T + b`` with ``W`` (C, D) and ``b`` (C,). Its parameters are packed
as ``theta = [W | b]`` of shape (C, D + 1), flattened row-major (index ``c * (D + 1) + d``), so with
``phi = [x, 1]`` the Jacobian of the logits is ``J = I_C kron phi.T`` and the generalised Gauss-Newton
(GGN) of the summed cross-entropy is ``H = sum_n (diag(p_n) - p_n p_n.T) kron phi_n phi_n.T``; for a
linear head this is the exact Hessian. The posterior is ``N(theta_MAP, inv(H + lam I))``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_softmax, softmax

from caveat.errors import ConfigError, DataError, NotCalibratedError
from caveat.uncertainty.errors import ArrayError, NotFittedError, check_features

HESSIANS = ("kron", "full")
LINKS = ("probit", "mc")
MAX_FULL_PARAMS = 6000  # at P = 6000 the dense (P, P) GGN is 288 MB and its eigh takes 1-2 minutes on 2 cores
PRIOR_GRID = np.logspace(-4, 4, 81)  # (L,) candidate prior precisions; the best is refined between neighbours
_CHUNK_BYTES = 64 * 2**20  # working memory per chunk of inputs in predict and friends


def positive_number(value) -> bool:
    """A finite real number > 0 (not a bool): what a prior precision or a temperature must be."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return bool(number and np.isfinite(value) and value > 0)


class LaplaceNotFittedError(NotFittedError, NotCalibratedError):
    """``LastLayerLaplace`` was used before ``fit`` (catchable as either parent)."""


class LaplaceArrayError(ArrayError, DataError):
    """An input array has the wrong shape or values (catchable as either parent)."""


def _features(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    return check_features(x, dim, error=LaplaceArrayError)


def _augment(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (N, D + 1): the 1 carries the bias


def _rows(bytes_per_row: int) -> int:
    return max(1, _CHUNK_BYTES // max(bytes_per_row, 1))


def evidence_optimum(log_evidence, h: np.ndarray, sq: float, *, stacklevel: int = 4) -> float:
    """The prior precision that maximises a Laplace log evidence: the best of ``PRIOR_GRID``, refined between
    its neighbours. ``log_evidence`` maps precisions (L,) to evidences (L,); ``h`` (P,) are the GGN's
    eigenvalues and ``sq`` the squared norm of the MAP parameters. Warns when the best is on the grid's bound."""
    values = log_evidence(PRIOR_GRID)  # (L,)
    i = int(np.argmax(values))

    # d evidence / d lam = (gamma(lam) - lam |theta|^2) / (2 lam) with gamma = sum h / (h + lam)
    # (MacKay's effective number of parameters); it falls monotonically, so the maximum is unique
    # and is the root of this function between the grid neighbours of the best grid point.
    def stationarity(log_lam: float) -> float:
        lam = math.exp(log_lam)
        return float(np.sum(h / (h + lam))) - lam * sq

    lo, hi = np.log(PRIOR_GRID[max(i - 1, 0)]), np.log(PRIOR_GRID[min(i + 1, len(PRIOR_GRID) - 1)])
    if stationarity(lo) >= 0 >= stationarity(hi):
        return float(np.exp(brentq(stationarity, lo, hi, xtol=1e-10)))
    warnings.warn(
        f"the evidence is largest at prior_precision {PRIOR_GRID[i]:.4g}, on the search bound "
        f"[{PRIOR_GRID[0]:.0e}, {PRIOR_GRID[-1]:.0e}]; pass prior_precision= explicitly",
        stacklevel=stacklevel,
    )
    return float(PRIOR_GRID[i])


class LastLayerLaplace:
    """Gaussian posterior over the last (linear) layer of a softmax classifier, pushed to the logits.

    Daxberger, Kristiadi, Immer, Eschenhagen, Bauer & Hennig (2021), "Laplace Redux -- Effortless
    Bayesian Deep Learning", NeurIPS. KFAC factors: Ritter, Botev & Barber (2018), "A Scalable Laplace
    Approximation for Neural Networks", ICLR. Probit link: MacKay (1992), "The Evidence Framework
    Applied to Classification Networks", Neural Computation.

    The weights are taken as given (post-hoc Laplace): ``fit`` needs the trained ``W``, ``b`` and the
    training features, then chooses the prior precision by the Laplace marginal likelihood.

    Parameters
    ----------
    hessian : {"kron", "full"}, default "kron"
        "full" keeps the dense (P, P) GGN, P = C (D + 1), allowed up to P = 6000; "kron" keeps the two
        KFAC factors (C, C) and (D + 1, D + 1) and inverts ``H + lam I`` through their eigenvectors.
    prior_precision : float > 0 or None, default None
        Precision ``lam`` of the isotropic Gaussian prior; None chooses it by maximising the log evidence
        over ``PRIOR_GRID`` (1e-4 .. 1e4) and refining between neighbours.
    link : {"probit", "mc"}, default "probit"
        How ``predict`` integrates the softmax over the logit Gaussian: the probit approximation
        ``softmax(mean / sqrt(1 + pi/8 var))`` or the average softmax of ``samples`` draws.
    samples : int >= 1, default 100
        Logit draws for ``link="mc"`` and the default of ``sample_probs``.
    seed : int, default 0
        Seed of the generator made afresh by each sampling call, so repeated calls agree.
    """

    def __init__(
        self,
        *,
        hessian: str = "kron",
        prior_precision: float | None = None,
        link: str = "probit",
        samples: int = 100,
        seed: int = 0,
    ) -> None:
        if hessian not in HESSIANS:
            raise ConfigError(f"hessian must be one of {HESSIANS}; got {hessian!r}")
        if link not in LINKS:
            raise ConfigError(f"link must be one of {LINKS}; got {link!r}")
        if prior_precision is not None and not positive_number(prior_precision):
            raise ConfigError(
                f"prior_precision must be a finite number > 0, or None to fit it; got {prior_precision!r}"
            )
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ConfigError(f"samples must be an integer >= 1; got {samples!r}. Use 100")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer; got {seed!r}")
        self.hessian, self.link, self.samples, self.seed = hessian, link, int(samples), int(seed)
        self.prior_precision = None if prior_precision is None else float(prior_precision)
        self.theta: np.ndarray | None = None  # (C, D + 1) MAP weights with the bias as last column
        self.factors: dict[str, np.ndarray] = {}  # eigendecompositions of the GGN (see ``state``)
        self._lam: float | None = None
        self._blocks: np.ndarray | None = None  # full only: cache of ``_diagonal_blocks``
        self.log_likelihood: float | None = None  # log p(y | theta_MAP), summed over the training set
        self.n_train: int | None = None

    # ------------------------------------------------------------------ fit
    @property
    def is_fitted(self) -> bool:
        return self.theta is not None

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise LaplaceNotFittedError(
                "LastLayerLaplace is not fitted; call fit(train features, labels, weight, bias) first"
            )

    @property
    def fitted_prior_precision(self) -> float:
        """The prior precision ``lam`` in use: the given one, or the one chosen by the evidence."""
        self._require_fit()
        return self._lam

    def tune_prior_precision(
        self, features: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None
    ) -> LastLayerLaplace:
        """Choose the prior precision by the NLL of ``predict`` on held-out inputs (features (N, D),
        labels (N,)) over a log grid (default 1e-2 .. 1e6), keeping the fitted GGN. Daxberger et al.
        (2021) tune it this way too: after post-hoc fitting, the evidence often picks a prior so weak
        that the predictive is nearly uniform. Returns self."""
        self._require_fit()
        y = np.asarray(labels)
        if y.ndim != 1 or y.shape[0] != np.asarray(features).shape[0]:
            raise LaplaceArrayError(f"labels must have shape ({np.asarray(features).shape[0]},); got {y.shape}")
        grid = np.logspace(-2, 6, 33) if grid is None else np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not (grid > 0).all():
            raise ConfigError(f"grid must be a non-empty 1-D array of positive precisions; got {grid!r}")
        nll = []
        for lam in grid:
            self._lam, self._blocks = float(lam), None
            p = self.predict(features)
            nll.append(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
        self._lam, self._blocks = float(grid[int(np.argmin(nll))]), None
        self.prior_precision = self._lam
        return self

    def fit(self, features: np.ndarray, labels: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> LastLayerLaplace:
        """Compute the GGN at the trained last layer and (when not given) the prior precision.

        Parameters
        ----------
        features : (N, D) penultimate features of the training inputs.
        labels : (N,) integer class ids in [0, C).
        weight : (C, D) trained last-layer weight (``torch.nn.Linear.weight``).
        bias : (C,) trained last-layer bias.

        Returns
        -------
        self
        """
        x = _features(features)
        n, d = x.shape
        w, b = np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != d or w.shape[0] < 2:
            raise LaplaceArrayError(
                f"weight must have shape (C, D) = (C, {d}) with C >= 2 to match features "
                f"{x.shape}; got {w.shape}. Pass the Linear layer's weight, not its transpose"
            )
        c = w.shape[0]
        if b.shape != (c,):
            raise LaplaceArrayError(f"bias must have shape ({c},) to match weight {w.shape}; got {b.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise LaplaceArrayError("weight or bias contains NaN or inf; check the trained model")
        y = np.asarray(labels)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise LaplaceArrayError(f"labels must be integer class ids of shape ({n},); got {y.dtype} {y.shape}")
        if n == 0 or y.min() < 0 or y.max() >= c:
            raise LaplaceArrayError(
                f"labels must be class ids in [0, {c}) for N >= 1 inputs; got "
                f"{'no inputs' if n == 0 else f'values in [{y.min()}, {y.max()}]'}"
            )
        n_params = c * (d + 1)
        if self.hessian == "full" and n_params > MAX_FULL_PARAMS:
            raise ConfigError(
                f"hessian='full' needs a dense ({n_params}, {n_params}) matrix for C (D + 1) = "
                f"{c} x {d + 1} = {n_params} parameters (limit {MAX_FULL_PARAMS}); use hessian='kron'"
            )
        theta = np.concatenate([w, b[:, None]], axis=1)  # (C, D + 1)
        phi = _augment(x)  # (N, D + 1)
        logp = log_softmax(phi @ theta.T, axis=1)  # (N, C)
        p = np.exp(logp)
        self.log_likelihood = float(logp[np.arange(n), y].sum())
        if self.hessian == "kron":
            # KFAC scaling convention (Ritter et al. 2018): with L_n = diag(p_n) - p_n p_n',
            # H = sum_n L_n kron phi_n phi_n' ~ N E[L] kron E[phi phi'] = G kron A, where G = sum_n L_n is
            # summed and A = sum_n phi_n phi_n' / N averaged, so H + lam I ~ G kron A + lam I; exact for N = 1.
            g_mat = np.diag(p.sum(axis=0)) - p.T @ p  # (C, C)
            a_mat = phi.T @ phi / n  # (D + 1, D + 1)
            g, ug = np.linalg.eigh(g_mat)
            a, ua = np.linalg.eigh(a_mat)
            self.factors = {
                "g_eigvals": np.maximum(g, 0.0),
                "g_eigvecs": ug,
                "a_eigvals": np.maximum(a, 0.0),
                "a_eigvecs": ua,
            }
        else:
            h, v = np.linalg.eigh(self._full_ggn(phi, p))
            self.factors = {"h_eigvals": np.maximum(h, 0.0), "h_eigvecs": v}
        self.theta, self.n_train, self._blocks = theta, n, None
        self._lam = self.prior_precision if self.prior_precision is not None else self._choose_prior_precision()
        return self

    @staticmethod
    def _full_ggn(phi: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``sum_n (diag(p_n) - p_n p_n') kron phi_n phi_n'``, built over chunks; ``(P, P)``."""
        n, k = phi.shape
        c = p.shape[1]
        h = np.zeros((c * k, c * k))
        step = _rows(8 * c * k * 2)
        for s in range(0, n, step):
            f, q = phi[s : s + step], p[s : s + step]
            outer = (q[:, :, None] * f[:, None, :]).reshape(len(f), c * k)  # (n, P): p_n kron phi_n
            h -= outer.T @ outer
            for j in range(c):  # the diag(p_n) part: one (D + 1, D + 1) block per class
                h[j * k : (j + 1) * k, j * k : (j + 1) * k] += (f * q[:, j : j + 1]).T @ f
        return (h + h.T) / 2

    # ------------------------------------------------------------ evidence
    def _ggn_eigvals(self) -> np.ndarray:
        """Eigenvalues of the (KFAC) GGN; ``(P,)``."""
        if self.hessian == "kron":
            return np.outer(self.factors["g_eigvals"], self.factors["a_eigvals"]).ravel()
        return self.factors["h_eigvals"]

    def log_evidence(self, prior_precision: float | None = None) -> float | np.ndarray:
        """Laplace log marginal likelihood at ``prior_precision`` (default: the fitted one).

        ``log p(y | theta) - lam/2 |theta|^2 + P/2 log lam - 1/2 log det(H + lam I)`` (the 2 pi terms
        cancel). Accepts a scalar or an array of precisions and returns the same shape.
        """
        self._require_fit()
        lam = np.asarray(self._lam if prior_precision is None else prior_precision, dtype=np.float64)
        h, sq = self._ggn_eigvals(), float(np.sum(self.theta**2))
        logdet = np.log(h[:, None] + lam.reshape(1, -1)).sum(axis=0).reshape(lam.shape)
        out = self.log_likelihood - 0.5 * lam * sq + 0.5 * h.size * np.log(lam) - 0.5 * logdet
        return float(out) if out.ndim == 0 else out

    def _choose_prior_precision(self) -> float:
        return evidence_optimum(self.log_evidence, self._ggn_eigvals(), float(np.sum(self.theta**2)))

    # --------------------------------------------------- dense (small only)
    def _dense_check(self, what: str) -> None:
        self._require_fit()
        if self.theta.size > MAX_FULL_PARAMS:
            raise ConfigError(
                f"{what} would be a dense ({self.theta.size}, {self.theta.size}) matrix (limit "
                f"{MAX_FULL_PARAMS}); use logit_variance / logit_covariance, which never form it"
            )

    def _dense(self, eig_fn) -> np.ndarray:
        if self.hessian == "kron":
            f = self.factors
            vec = np.kron(f["g_eigvecs"], f["a_eigvecs"])  # (P, P); eigenvectors of G kron A
            vals = np.outer(f["g_eigvals"], f["a_eigvals"]).ravel()
        else:
            vec, vals = self.factors["h_eigvecs"], self.factors["h_eigvals"]
        return (vec * eig_fn(vals)) @ vec.T

    def ggn(self) -> np.ndarray:
        """The GGN ``H`` (full) or ``G kron A`` (kron) in the row-major ``[W | b]`` order; ``(P, P)``."""
        self._dense_check("ggn()")
        return self._dense(lambda v: v)

    def posterior_covariance(self) -> np.ndarray:
        """``inv(H + lam I)`` over the row-major ``[W | b]`` parameters; ``(P, P)``, small heads only."""
        self._dense_check("posterior_covariance()")
        return self._dense(lambda v: 1.0 / (v + self._lam))

    # ---------------------------------------------------------- predictive
    def _phi(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_fit()
        phi = _augment(_features(features, self.theta.shape[1] - 1))  # (N, D + 1)
        return phi, phi @ self.theta.T  # (N, C) MAP logits = the mean of the logit Gaussian

    def _kron_scales(self, phi: np.ndarray) -> np.ndarray:
        """Variance along each eigenvector of G: ``cov_n = Ug diag(s_n) Ug'``; ``(N, D+1) -> (N, C)``."""
        f = self.factors
        inv = 1.0 / (np.outer(f["g_eigvals"], f["a_eigvals"]) + self._lam)  # (C, D + 1)
        return (phi @ f["a_eigvecs"]) ** 2 @ inv.T  # (N, C)

    def _full_root(self, phi: np.ndarray) -> np.ndarray:
        """``R_n`` with ``cov_n = R_n R_n'``: ``J_n V diag(1 / sqrt(h + lam))``; ``(n, C, P)``."""
        c, k = self.theta.shape
        v = self.factors["h_eigvecs"].reshape(c, k, c * k)  # (C, D + 1, P)
        return np.einsum("nd,cdq->ncq", phi, v, optimize=True) / np.sqrt(self.factors["h_eigvals"] + self._lam)

    def logit_variance(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and per-class variance of the logits; ``(N, D) -> (N, C), (N, C)``. Never forms (N, C, C)."""
        phi, mean = self._phi(features)
        if self.hessian == "kron":
            return mean, self._kron_scales(phi) @ (self.factors["g_eigvecs"] ** 2).T
        blocks = self._diagonal_blocks()  # (C, D + 1, D + 1)
        step = _rows(8 * blocks.shape[0] * blocks.shape[1])
        var = np.concatenate(
            [
                np.sum((phi[s : s + step] @ blocks) * phi[s : s + step], axis=-1).T  # (n, C)
                for s in range(0, len(phi), step)
            ]
        )
        return mean, var

    def _diagonal_blocks(self) -> np.ndarray:
        """The C diagonal (D+1, D+1) blocks of the full posterior covariance, made once; ``(C, D+1, D+1)``.
        A logit's variance needs only its class's block: ``var[n, c] = phi_n' Sigma_cc phi_n``."""
        if self._blocks is None:
            c, k = self.theta.shape
            v = self.factors["h_eigvecs"].reshape(c, k, c * k) / np.sqrt(self.factors["h_eigvals"] + self._lam)
            self._blocks = np.stack([vc @ vc.T for vc in v])  # one BLAS product per class
        return self._blocks

    def logit_covariance(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance ``J Sigma J'`` of the logits; ``(N, D) -> (N, C), (N, C, C)``.

        The output alone is ``8 N C^2`` bytes (1 GB at N = 5500, C = 150); ``predict`` does not need it.
        """
        phi, mean = self._phi(features)
        c, k = self.theta.shape
        cov = np.empty((len(phi), c, c))
        if self.hessian == "kron":
            ug = self.factors["g_eigvecs"]
            s = self._kron_scales(phi)  # (N, C)
            step = _rows(8 * c * c)
            for i in range(0, len(phi), step):
                chunk = s[i : i + step]  # (n, C)
                cov[i : i + len(chunk)] = (ug[None] * chunk[:, None, :]) @ ug.T  # (n, C, C): Ug diag(s_n) Ug'
        else:
            step = _rows(8 * c * c * k)
            for i in range(0, len(phi), step):
                root = self._full_root(phi[i : i + step])  # (n, C, P)
                cov[i : i + len(root)] = root @ root.transpose(0, 2, 1)
        return mean, cov

    def _draws(self, phi: np.ndarray, mean: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` logit draws from ``N(mean_n, cov_n)`` for one chunk; ``(n, D+1) -> (m, n, C)``."""
        if self.hessian == "kron":
            z = rng.standard_normal((m, *mean.shape)) * np.sqrt(self._kron_scales(phi))  # (m, n, C)
            return mean + z @ self.factors["g_eigvecs"].T
        root = self._full_root(phi)  # (n, C, P)
        z = rng.standard_normal((len(phi), root.shape[2], m))  # (n, P, m)
        return mean + (root @ z).transpose(2, 0, 1)  # (m, n, C)

    def _chunks(self, features: np.ndarray, m: int):
        phi, mean = self._phi(features)
        c, k = self.theta.shape
        # floats held per input: the square root of its covariance, the normal draws, the logit draws
        width = c + m * c if self.hessian == "kron" else c * c * k + c * k * m
        step = _rows(8 * (width + 2 * m * c))
        rng = np.random.default_rng(self.seed)
        for i in range(0, len(phi), step):
            yield self._draws(phi[i : i + step], mean[i : i + step], m, rng)

    def sample_logits(self, features: np.ndarray, samples: int | None = None) -> np.ndarray:
        """Seeded logit draws from the per-input Gaussian; ``(N, D) -> (M, N, C)``, M = ``samples``."""
        m = self._samples(samples)
        return np.concatenate(list(self._chunks(features, m)), axis=1)

    def sample_probs(self, features: np.ndarray, samples: int | None = None) -> np.ndarray:
        """Softmax of :meth:`sample_logits`; ``(N, D) -> (M, N, C)``, the layout of ``Predictions.probs``,
        so sampled scores (mutual information, variance, ...) apply."""
        return softmax(self.sample_logits(features, samples), axis=-1)

    def _samples(self, samples: int | None) -> int:
        m = self.samples if samples is None else samples
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ConfigError(f"samples must be an integer >= 1; got {samples!r}")
        return int(m)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictive class probabilities under the chosen ``link``; ``(N, D) -> (N, C)``.

        The probit link shrinks each class's logit by its own variance, so its argmax can differ from
        the MAP argmax when the variances differ across classes (rare where the variances are small,
        as on training inputs). Its variances include the direction that shifts all logits alike
        (the GGN's null space, variance ``~ |phi|^2 / lam``), which softmax ignores but probit does not;
        use ``link="mc"`` when that matters. Works in chunks: memory does not grow with ``N``.
        """
        if self.link == "probit":
            mean, var = self.logit_variance(features)
            return softmax(mean / np.sqrt(1.0 + np.pi / 8.0 * var), axis=-1)
        return np.concatenate([softmax(z, axis=-1).mean(axis=0) for z in self._chunks(features, self.samples)])

    # ---------------------------------------------------------------- state
    def state(self) -> dict:
        """``{"settings": JSON-able dict, "arrays": {name: ndarray}}``; the arrays suit
        ``safetensors.numpy.save_file``. Arrays: ``theta`` (C, D + 1) and the GGN eigendecomposition
        (kron: ``g_eigvals`` (C,), ``g_eigvecs`` (C, C), ``a_eigvals`` (D+1,), ``a_eigvecs`` (D+1, D+1);
        full: ``h_eigvals`` (P,), ``h_eigvecs`` (P, P))."""
        self._require_fit()
        settings = {
            "hessian": self.hessian,
            "link": self.link,
            "samples": self.samples,
            "seed": self.seed,
            "prior_precision": self.prior_precision,
            "fitted_prior_precision": self._lam,
            "log_likelihood": self.log_likelihood,
            "n_train": self.n_train,
        }
        arrays = {"theta": self.theta, **self.factors}
        return {"settings": settings, "arrays": {k: np.ascontiguousarray(v) for k, v in arrays.items()}}

    @classmethod
    def from_state(cls, state: dict) -> LastLayerLaplace:
        """Rebuild a fitted object from :meth:`state` (arrays e.g. from ``safetensors.numpy.load_file``)."""
        settings, arrays = state.get("settings", {}), state.get("arrays", {})
        missing = {
            "hessian",
            "link",
            "samples",
            "seed",
            "prior_precision",
            "fitted_prior_precision",
            "log_likelihood",
            "n_train",
        } - set(settings)
        if missing:
            raise ConfigError(f"LastLayerLaplace state lacks settings {sorted(missing)}; save it with state()")
        la = cls(
            hessian=settings["hessian"],
            prior_precision=settings["prior_precision"],
            link=settings["link"],
            samples=settings["samples"],
            seed=settings["seed"],
        )
        kron = la.hessian == "kron"
        names = ("g_eigvals", "g_eigvecs", "a_eigvals", "a_eigvecs") if kron else ("h_eigvals", "h_eigvecs")
        lacking = sorted({"theta", *names} - set(arrays))
        if lacking:
            raise LaplaceArrayError(
                f"LastLayerLaplace state lacks arrays {lacking}; save it with state() and refit if lost"
            )
        theta = np.asarray(arrays["theta"], dtype=np.float64)
        f = {k: np.asarray(arrays[k], dtype=np.float64) for k in names}
        c, k = theta.shape if theta.ndim == 2 else (-1, -1)
        want = (
            {"g_eigvals": (c,), "g_eigvecs": (c, c), "a_eigvals": (k,), "a_eigvecs": (k, k)}
            if kron
            else {"h_eigvals": (c * k,), "h_eigvecs": (c * k, c * k)}
        )
        bad = {name: f[name].shape for name in names if f[name].shape != want[name]}
        if theta.ndim != 2 or bad:
            raise LaplaceArrayError(
                f"inconsistent LastLayerLaplace state: theta {theta.shape}, {bad}; expected theta (C, D + 1) and {want}"
            )
        lam = float(settings["fitted_prior_precision"])
        if not lam > 0:
            raise LaplaceArrayError(
                f"stored fitted_prior_precision must be > 0; got {lam}. The state is corrupt: refit"
            )
        la.theta, la.factors, la._lam = theta, f, lam
        la.log_likelihood, la.n_train = float(settings["log_likelihood"]), int(settings["n_train"])
        return la
