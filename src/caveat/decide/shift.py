"""Covariate shift from unlabelled target inputs: importance weights, their effective sample size, and
the weighted quantile and rejection sample the shifted guarantees are built on.

``DensityRatio`` estimates ``w(x) = p_target(x) / p_source(x)`` with a probabilistic domain classifier
(logistic regression, regularisation chosen by cross-validated log-loss): with ``P(target | x)`` from
a classifier trained on ``n_s`` source and ``n_t`` target inputs,
``w(x) = P(target | x) / P(source | x) · n_s / n_t`` (Bickel, Brückner & Scheffer 2007,
"Discriminative learning for differing training and test distributions", ICML). Which covariates the
classifier reads is the caller's choice; the calibration reads the model's log-probabilities, so the
shift it corrects is a change in how confident the model is and about which class, and the guarantees
built on the weights hold if ``p(y | log-probabilities)`` is the same in both domains.

- ``weighted_quantile``: the split-conformal quantile under covariate shift (Tibshirani, Barber, Candès
  & Ramdas 2019, "Conformal prediction under covariate shift", NeurIPS): the calibration scores weigh
  ``w(x_i)`` each and the test input adds ``w(x)`` at ``+inf``, so the quantile is per input.
- ``rejection_sample``: keep calibration example i with probability ``w_i / max w``; what is kept is a
  sample from the target distribution (when the weights are right), so any i.i.d. procedure (here
  Learn-then-Test) applies to it unchanged (Park, Dobriban, Lee & Bastani 2022, "PAC prediction sets
  under covariate shift", ICLR).
- ``effective_sample_size``: Kish's ``(Σw)² / Σw²``, how many unweighted examples the weighted ones are
  worth.

The weights are estimated, not known: the guarantees are exact for the true ratio and approximate for
an estimated one; the effective sample size says how much the estimate leans on a few examples.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from caveat.errors import ConfigError, DataError, NotCalibratedError

MIN_INPUTS = 20  # per domain: fewer cannot fit, let alone cross-validate, a domain classifier
PENALTIES = tuple(10.0**k for k in range(-4, 3))  # inverse L2 strengths tried by cross-validation
FOLDS = 5


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(Σw)² / Σw²`` of non-negative weights (n for equal weights)."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    return 0.0 if total <= 0 else total**2 / float((w**2).sum())


def weighted_quantile(scores: np.ndarray, weights: np.ndarray, test_weights: np.ndarray, alpha: float) -> np.ndarray:
    """The weighted split-conformal quantile of each test input (Tibshirani et al. 2019).

    Parameters
    ----------
    scores : (n,) conformity scores of the calibration examples' true labels.
    weights : (n,) their importance weights ``w(x_i) >= 0``.
    test_weights : (m,) the weights ``w(x)`` of the test inputs.
    alpha : miscoverage level.

    Returns
    -------
    (m,) the smallest calibration score s with ``Σ_{s_i <= s} w_i >= (1 - alpha)(Σw + w(x))``, or
    ``+inf`` where no score reaches it (the test input's own weight is too large: every label is kept).
    """
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    cumulative = np.cumsum(w[order])  # (n,)
    need = (1.0 - alpha) * (cumulative[-1] + np.asarray(test_weights, dtype=np.float64))  # (m,)
    k = np.searchsorted(cumulative, need * (1 - 1e-12), side="left")  # first index reaching it
    sorted_scores = s[order]
    return np.where(k < len(s), sorted_scores[np.minimum(k, len(s) - 1)], np.inf)


def rejection_sample(weights: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(n,) bool: example i kept with probability ``w_i / max w`` (seeded), a sample of the target domain."""
    w = np.asarray(weights, dtype=np.float64)
    top = float(w.max()) if len(w) else 0.0
    if not top > 0:
        raise DataError("every importance weight is 0: no calibration example resembles the target inputs")
    return np.random.default_rng(seed).random(len(w)) < w / top


class DensityRatio:
    """Importance weights ``p_target(x) / p_source(x)`` from a logistic-regression domain classifier.

    Parameters
    ----------
    seed : seeds the cross-validation folds.

    Attributes (after ``fit``)
    ----------
    mean, scale : (D,) standardisation of the covariates.
    coef : (D,) and ``intercept``: the classifier's log-odds of "target" on standardised covariates.
    prior : ``n_s / n_t``, turning odds into a density ratio.
    penalty : the inverse L2 strength cross-validation chose; ``auroc`` how well the domains separate
        (held-out; 0.5 = no shift the covariates can see).
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.prior = 1.0
        self.penalty: float | None = None
        self.auroc: float | None = None

    def fit(self, source: np.ndarray, target: np.ndarray) -> DensityRatio:
        """Fit on source covariates ``(n_s, D)`` (the labelled calibration inputs) and target ``(n_t, D)``."""
        xs, xt = _covariates(source, "source"), _covariates(target, "target")
        if xs.shape[1] != xt.shape[1]:
            raise DataError(f"source and target covariates differ in width: {xs.shape[1]} vs {xt.shape[1]}")
        for name, x in (("source (calibration)", xs), ("target", xt)):
            if len(x) < MIN_INPUTS:
                raise DataError(
                    f"{len(x)} {name} inputs are too few to estimate importance weights; give at least {MIN_INPUTS}"
                )
        x = np.concatenate([xs, xt])
        domain = np.r_[np.zeros(len(xs)), np.ones(len(xt))]
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-12
        z = (x - self.mean) / self.scale
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cv = {
                c: cross_val_score(_classifier(c), z, domain, cv=folds, scoring="neg_log_loss").mean()
                for c in PENALTIES
            }
            self.penalty = max(cv, key=cv.get)
            auroc = cross_val_score(_classifier(self.penalty), z, domain, cv=folds, scoring="roc_auc")
            self.auroc = float(auroc.mean())
            clf = _classifier(self.penalty).fit(z, domain)
        self.coef, self.intercept = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
        self.prior = len(xs) / len(xt)
        return self

    def weights(self, covariates: np.ndarray) -> np.ndarray:
        """(N,) importance weights of inputs with these ``(N, D)`` covariates."""
        if self.coef is None:
            raise NotCalibratedError("DensityRatio is not fitted: call fit(source, target) first")
        x = _covariates(covariates, "covariates")
        if x.shape[1] != len(self.coef):
            raise DataError(f"covariates have {x.shape[1]} columns; the ratio was fitted on {len(self.coef)}")
        log_odds = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return np.exp(np.clip(log_odds, -50, 50)) * self.prior

    def state(self) -> dict:
        """JSON-able fitted state; see ``from_state``."""
        if self.coef is None:
            raise NotCalibratedError("DensityRatio is not fitted: nothing to save")
        return {
            "method": "logistic-domain-classifier",
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "prior": self.prior,
            "penalty": self.penalty,
            "auroc": self.auroc,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, state: dict) -> DensityRatio:
        missing = {"mean", "scale", "coef", "intercept", "prior"} - set(state)
        if missing:
            raise ConfigError(f"density-ratio state lacks {', '.join(sorted(missing))}; recalibrate the run")
        ratio = cls(seed=state.get("seed", 0))
        ratio.mean, ratio.scale, ratio.coef = (np.asarray(state[k], np.float64) for k in ("mean", "scale", "coef"))
        ratio.intercept, ratio.prior = float(state["intercept"]), float(state["prior"])
        ratio.penalty, ratio.auroc = state.get("penalty"), state.get("auroc")
        return ratio


def _classifier(penalty: float) -> LogisticRegression:
    return LogisticRegression(C=penalty, max_iter=2000)


def _covariates(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise DataError(f"{name} covariates must be a finite (N, D) array; got shape {arr.shape}")
    return arr
