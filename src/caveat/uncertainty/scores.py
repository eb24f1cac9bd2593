"""Uncertainty scores: pure functions on arrays, with one sign everywhere: higher = more uncertain.

Every function takes stochastic outputs of shape ``(M, N, C)`` (M samples, N inputs, C classes) and
returns ``(N,)``. A deterministic model's ``(N, C)`` output is accepted as ``M = 1``. Token tasks
select their real words first (``probs[:, mask]`` is ``(M, K, C)``).

``SCORES`` maps each name to a :class:`Score`, which declares what it ``needs`` so a caller runs each
expensive pass once: ``"probs"`` (any M), ``"logits"``, or ``"samples"`` (probs with M > 1; with
M = 1 these scores are still defined but degenerate: mutual information and variance are 0). Old names
of renamed scores (``msp``, now ``least_confidence``) are mapped by ``resolve_score_name``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import entr, logsumexp

from caveat.errors import ConfigError
from caveat.registry import Registry
from caveat.uncertainty.errors import ArrayError

Needs = Literal["probs", "logits", "samples"]
_SUM_TOL = 1e-4  # float32 softmax outputs sum to 1 within ~1e-6; 1e-4 still catches raw logits


@dataclass(frozen=True)
class Score:
    """A registered score: the function, what it needs, and the paper it comes from."""

    name: str
    needs: Needs
    fn: Callable[..., np.ndarray]
    cite: str

    def __call__(self, *, probs: np.ndarray | None = None, logits: np.ndarray | None = None, **options) -> np.ndarray:
        """Compute the score from whichever input it needs; returns ``(N,)``."""
        source = logits if self.needs == "logits" else probs
        if source is None:
            arg = "logits" if self.needs == "logits" else "probs"
            raise ArrayError(
                f"score {self.name!r} needs {arg}; pass {arg}=... (Predictions.{arg}) or choose a "
                f"score that needs {'probs' if arg == 'logits' else 'logits'}"
            )
        return self.fn(source, **options)


SCORES: Registry[Score] = Registry("uncertainty score")


def _register(name: str, needs: Needs, cite: str) -> Callable:
    def add(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        SCORES.register(name)(Score(name, needs, fn, cite))
        return fn

    return add


def as_samples(x: np.ndarray, name: str = "probs") -> np.ndarray:
    """Return ``x`` as float64 ``(M, N, C)``; ``(N, C)`` becomes ``(1, N, C)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]  # (1, N, C)
    if x.ndim != 3:
        raise ArrayError(
            f"{name} must have shape (M, N, C) or (N, C); got shape {x.shape}. For token tasks "
            f"select the real words first: {name}[:, mask] is (M, K, C)"
        )
    if x.shape[-1] < 2:
        raise ArrayError(f"{name} must have at least 2 classes on the last axis; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ArrayError(
            f"{name} contains NaN or inf at {int((~np.isfinite(x)).sum())} entries; "
            "check the model outputs (e.g. fp16 overflow)"
        )
    return x


def check_probs(probs: np.ndarray) -> np.ndarray:
    """Validate probabilities: ``(M, N, C)`` or ``(N, C)``, in [0, 1], summing to 1 over classes."""
    p = as_samples(probs, "probs")
    sums = p.sum(axis=-1)
    if p.min(initial=0.0) < -_SUM_TOL or np.abs(sums - 1.0).max(initial=0.0) > _SUM_TOL:
        raise ArrayError(
            f"probs must be non-negative and sum to 1 over the last axis (classes); got sums in "
            f"[{sums.min():.4g}, {sums.max():.4g}] and minimum {p.min():.4g}. "
            "Pass softmax(logits, axis=-1), not logits"
        )
    return np.clip(p, 0.0, 1.0)


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    part = np.partition(p, -2, axis=-1)  # (N, C); the two largest sit at the end
    return part[..., -1], part[..., -2]


@_register(
    "least_confidence", "probs", "Hendrycks & Gimpel 2017, A Baseline for Detecting Misclassified and OOD Examples"
)
def least_confidence(probs: np.ndarray) -> np.ndarray:
    """Least confidence: one minus the maximum softmax probability of the mean prediction, ``1 - max_c p_c``.

    The maximum softmax probability (MSP) baseline of Hendrycks & Gimpel (2017), "A Baseline for
    Detecting Misclassified and Out-of-Distribution Examples in Neural Networks", ICLR, turned round to
    our sign. It was registered as ``msp`` until this release; that name still resolves here, with a
    ``DeprecationWarning`` (``resolve_score_name``).

    Parameters
    ----------
    probs : (M, N, C) or (N, C)

    Returns
    -------
    (N,) in [0, 1 - 1/C]; higher = more uncertain.
    """
    return 1.0 - check_probs(probs).mean(axis=0).max(axis=-1)


@_register("entropy", "probs", "Shannon 1948; predictive entropy as in Gal 2016 (thesis)")
def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy: the entropy (nats) of the mean prediction, ``H[mean_m p_m]``.

    Shannon (1948); used as total predictive uncertainty by Gal (2016), "Uncertainty in Deep
    Learning", PhD thesis, University of Cambridge.

    Parameters
    ----------
    probs : (M, N, C) or (N, C)

    Returns
    -------
    (N,) in [0, log C].
    """
    return entr(check_probs(probs).mean(axis=0)).sum(axis=-1)


@_register("margin", "probs", "Scheffer et al. 2001, Active Hidden Markov Models for Information Extraction")
def margin(probs: np.ndarray) -> np.ndarray:
    """One minus the margin between the two largest mean probabilities, ``1 - (p1 - p2)``.

    Scheffer, Decomain & Wrobel (2001), "Active Hidden Markov Models for Information Extraction",
    IDA.

    Parameters
    ----------
    probs : (M, N, C) or (N, C)

    Returns
    -------
    (N,) in [0, 1].
    """
    p1, p2 = _top2(check_probs(probs).mean(axis=0))
    return 1.0 - (p1 - p2)


@_register("max_logit", "logits", "Hendrycks et al. 2022, Scaling OOD Detection to the Real World")
def max_logit(logits: np.ndarray) -> np.ndarray:
    """Minus the maximum logit, averaged over samples: ``mean_m(-max_c z_mc)``.

    Hendrycks, Basart, Mazeika et al. (2022), "Scaling Out-of-Distribution Detection for
    Real-World Settings", ICML.

    Parameters
    ----------
    logits : (M, N, C) or (N, C)

    Returns
    -------
    (N,) unbounded.
    """
    return -as_samples(logits, "logits").max(axis=-1).mean(axis=0)


@_register("energy", "logits", "Liu et al. 2020, Energy-based Out-of-distribution Detection")
def energy(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Free energy ``-T * logsumexp(z / T)``, averaged over samples.

    Liu, Wang, Owens & Li (2020), "Energy-based Out-of-distribution Detection", NeurIPS. In-distribution
    inputs have low (very negative) energy, so the energy itself already follows our sign.

    Parameters
    ----------
    logits : (M, N, C) or (N, C)
    temperature : float > 0, default 1.

    Returns
    -------
    (N,) unbounded.
    """
    if not temperature > 0:
        raise ConfigError(f"energy temperature must be > 0; got {temperature!r}. Use 1.0 (the paper's choice)")
    z = as_samples(logits, "logits")
    return (-temperature * logsumexp(z / temperature, axis=-1)).mean(axis=0)


@_register("expected_entropy", "samples", "Depeweg et al. 2018, Decomposition of Uncertainty in Bayesian Deep Learning")
def expected_entropy(probs: np.ndarray) -> np.ndarray:
    """Mean over samples of each sample's entropy, ``mean_m H[p_m]`` (aleatoric part).

    Depeweg, Hernandez-Lobato, Doshi-Velez & Udluft (2018), "Decomposition of Uncertainty in
    Bayesian Deep Learning for Efficient and Risk-sensitive Learning", ICML.

    Parameters
    ----------
    probs : (M, N, C) or (N, C)

    Returns
    -------
    (N,) in [0, log C].
    """
    return entr(check_probs(probs)).sum(axis=-1).mean(axis=0)


@_register("mutual_information", "samples", "Gal & Ghahramani 2016; Depeweg et al. 2018")
def mutual_information(probs: np.ndarray) -> np.ndarray:
    """Mutual information between prediction and model (BALD; epistemic part).

    ``H[mean_m p_m] - mean_m H[p_m]``: zero when every sample agrees. Gal & Ghahramani (2016),
    "Dropout as a Bayesian Approximation", ICML; Houlsby et al. (2011), BALD; Depeweg et al. (2018).

    Parameters
    ----------
    probs : (M, N, C) or (N, C) (M = 1 gives 0 everywhere).

    Returns
    -------
    (N,) in [0, log C]; clipped at 0 against rounding.
    """
    p = check_probs(probs)
    return np.maximum(entropy(p) - expected_entropy(p), 0.0)


@_register("variance", "samples", "Kendall & Gal 2017; Smith & Gal 2018")
def variance(probs: np.ndarray) -> np.ndarray:
    """Mean over classes of the variance over samples of each class probability.

    Kendall & Gal (2017), "What Uncertainties Do We Need in Bayesian Deep Learning for Computer
    Vision?", NeurIPS; Smith & Gal (2018), "Understanding Measures of Uncertainty for Adversarial
    Example Detection", UAI.

    Parameters
    ----------
    probs : (M, N, C) or (N, C) (M = 1 gives 0 everywhere).

    Returns
    -------
    (N,) in [0, 0.25].
    """
    return check_probs(probs).var(axis=0).mean(axis=-1)  # (N, C) -> (N,)


# renamed scores: old name -> current name, accepted (with a DeprecationWarning) until the next release
SCORE_ALIASES = {"msp": "least_confidence"}  # "msp" named the max probability; the score is 1 minus it
for _old, _new in SCORE_ALIASES.items():
    SCORES.alias(_old, _new)


def resolve_score_name(name: str, *, stacklevel: int = 2) -> str:
    """The current name of the uncertainty score ``name``: itself, or for an old name (``"msp"``) the name it
    now has, with a ``DeprecationWarning`` attributed as ``warnings.warn(stacklevel=...)`` would be from the
    function calling this one (1: that line; 2, the default: the caller of that function, the user's code
    when an entry point such as ``Model.calibrate(score=...)`` calls this).

    Every place a person or a stored calibration names a classifier's score calls this first, so the old name
    works everywhere and warns once, at the outermost call (inner calls see the current name). Not for
    ``RiskControlled(score=...)`` itself, whose name is a free label (a generation policy puts its estimator
    there, and generation's ``msp`` is another thing: the sequence probability).

    Examples
    --------
    >>> resolve_score_name("entropy")
    'entropy'
    """
    return SCORES.resolve(name, stacklevel=stacklevel + 1)
