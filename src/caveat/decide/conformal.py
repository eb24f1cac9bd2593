"""Split conformal prediction sets for classification: LAC, APS and RAPS.

Each score kind maps probabilities to a conformity score for *every* candidate label, shape
``(N, C)``, higher = less conforming. Calibration keeps the ``k = ceil((n + 1)(1 - alpha))``-th
smallest score of the true labels over ``n`` calibration examples (the finite-sample quantile
``k / n``); the set of a new input is every label whose score is at most that quantile. For
exchangeable data this gives ``1 - alpha <= P(y in set) <= 1 - alpha + 1 / (n + 1)`` (the upper
bound when scores have no ties). With ``class_conditional=True`` one quantile is kept per class
from that class's calibration examples, which gives the same bound for every class.

References
----------
Vovk, Gammerman, Shafer (2005). Algorithmic Learning in a Random World. Springer.
Vovk (2012). Conditional validity of inductive conformal predictors. ACML.
Sadinle, Lei, Wasserman (2019). Least ambiguous set-valued classifiers with bounded error levels.
    JASA 114(525). (LAC)
Romano, Sesia, Candès (2020). Classification with valid and adaptive coverage. NeurIPS. (APS)
Angelopoulos, Bates, Malik, Jordan (2021). Uncertainty sets for image classifiers using conformal
    prediction. ICLR. (RAPS)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

import numpy as np

from caveat.decide.shift import weighted_quantile
from caveat.errors import ConfigError, DataError, NotCalibratedError
from caveat.registry import Registry

CONFORMAL: Registry[type] = Registry("conformal score")

# Row sums of float32 softmax outputs drift by ~1e-6; anything past this is not a distribution.
_SUM_TOLERANCE = 1e-3


def check_level(name: str, value: Any, *, fix: str) -> float:
    """Return ``value`` as a float if it lies strictly between 0 and 1, else raise ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name} must be in (0, 1); got {value!r}. {fix}")
    return float(value)


def as_probs(probs: Any, *, name: str = "probs") -> np.ndarray:
    """Validate class probabilities and average stochastic samples.

    Parameters
    ----------
    probs : (N, C) or (M, N, C) array of probabilities; rows sum to 1. With M samples (MC
        dropout, ensembles) the mean over M is used.

    Returns
    -------
    (N, C) float64 array.
    """
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)  # (M, N, C) -> (N, C)
    if arr.ndim != 2:
        raise DataError(
            f"{name} must have shape (N, C) or (M, N, C); got shape {arr.shape}. "
            "For token tasks select the real words with the mask first."
        )
    n, c = arr.shape
    if n == 0 or c < 2:
        raise DataError(f"{name} needs at least 1 input and 2 classes; got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0 + _SUM_TOLERANCE:
        raise DataError(f"{name} must hold finite probabilities in [0, 1]; pass softmax outputs, not logits")
    worst = float(np.abs(arr.sum(axis=1) - 1.0).max())
    if worst > _SUM_TOLERANCE:
        raise DataError(f"rows of {name} must sum to 1 (worst row is off by {worst:.3g}); pass softmax outputs")
    return arr


def check_labels(labels: Any, n: int, n_classes: int) -> np.ndarray:
    """Return ``labels`` as an ``(N,)`` int array of class indices in ``[0, n_classes)``."""
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise DataError(f"labels must have shape ({n},) to match probs; got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise DataError(
            f"labels must be integer class indices; got dtype {arr.dtype}. Map label names to indices first."
        )
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        raise DataError(
            f"labels must lie in [0, {n_classes}) for {n_classes} classes; got {int(arr[bad][0])} "
            f"at position {int(np.flatnonzero(bad)[0])}"
        )
    return arr.astype(np.int64)


def conformal_quantile(scores: np.ndarray, alpha: float, *, what: str = "calibration examples") -> float:
    """The split-conformal quantile: the ``ceil((n + 1)(1 - alpha))``-th smallest of ``scores`` (n,).

    Raises ``DataError`` when ``n < 1 / alpha - 1``: the quantile would be infinite.
    """
    n = int(scores.shape[0])
    # The small epsilon keeps e.g. (99 + 1) * 0.9 = 90.00000000000001 from rounding up to 91.
    k = max(1, math.ceil((n + 1) * (1.0 - alpha) - 1e-9))
    if k > n:
        need = max(1, math.ceil(1.0 / alpha - 1.0 - 1e-9))
        smallest = 1.0 / (n + 1)
        raise DataError(
            f"{n} {what} are too few for alpha={alpha}: split conformal needs at least {need} "
            f"(ceil((n + 1)(1 - alpha)) <= n). Pass more calibration data or use alpha >= {smallest:.3g}."
        )
    return float(np.partition(scores, k - 1)[k - 1])


def _cumulative_scores(
    probs: np.ndarray, rng: np.random.Generator, randomized: bool, penalty: np.ndarray
) -> np.ndarray:
    """APS/RAPS score of every label: probability mass ranked above it, plus its own (times U)."""
    order = np.argsort(-probs, axis=1, kind="stable")  # (N, C) class ids, most probable first
    ranked = np.take_along_axis(probs, order, axis=1)  # (N, C)
    mass = np.cumsum(ranked, axis=1)  # (N, C) mass up to and including each rank
    if randomized:
        u = rng.random((probs.shape[0], 1))  # (N, 1) one draw per input, shared by its labels
        mass = mass - (1.0 - u) * ranked
    mass = mass + penalty[None, :]  # (1, C) rank penalty (zeros for APS)
    out = np.empty_like(mass)
    np.put_along_axis(out, order, mass, axis=1)  # back to class order
    return out


@CONFORMAL.register("lac")
@dataclass(frozen=True)
class LAC:
    """Least ambiguous set-valued classifier: score ``1 - p_y`` (Sadinle et al. 2019).

    Gives the smallest sets on average; sets may be empty for inputs unlike the calibration data.
    """

    def scores(self, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, C) probabilities -> (N, C) scores."""
        return 1.0 - probs


@CONFORMAL.register("aps")
@dataclass(frozen=True)
class APS:
    """Adaptive prediction sets: mass of the labels ranked at or above ``y`` (Romano et al. 2020).

    ``randomized=True`` counts ``U * p_y`` for ``y`` itself (U ~ Uniform(0, 1)), which makes coverage
    exact rather than conservative but the sets random; the default is deterministic.
    """

    randomized: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.randomized, bool):
            raise ConfigError(f"randomized must be True or False; got {self.randomized!r}")

    def scores(self, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, C) probabilities -> (N, C) scores."""
        return _cumulative_scores(probs, rng, self.randomized, np.zeros(probs.shape[1]))


@CONFORMAL.register("raps")
@dataclass(frozen=True)
class RAPS:
    """Regularised APS: APS plus ``lam * max(0, rank(y) - k_reg)`` (Angelopoulos et al. 2021).

    The penalty discourages labels ranked below ``k_reg``, so sets are smaller and more stable when
    many classes share little probability.
    """

    lam: float = 0.01
    k_reg: int = 5
    randomized: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.lam, bool) or not isinstance(self.lam, Real) or not 0.0 <= float(self.lam) < math.inf:
            raise ConfigError(f"lam must be a finite number >= 0; got {self.lam!r} (0 turns RAPS into APS)")
        if isinstance(self.k_reg, bool) or not isinstance(self.k_reg, Integral) or self.k_reg < 0:
            raise ConfigError(f"k_reg must be an integer >= 0; got {self.k_reg!r} (e.g. the typical set size)")
        if not isinstance(self.randomized, bool):
            raise ConfigError(f"randomized must be True or False; got {self.randomized!r}")
        # Plain Python numbers keep state() JSON-able when numpy scalars were passed in.
        object.__setattr__(self, "lam", float(self.lam))
        object.__setattr__(self, "k_reg", int(self.k_reg))

    def scores(self, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, C) probabilities -> (N, C) scores."""
        ranks = np.arange(1, probs.shape[1] + 1)  # (C,) 1-based rank
        penalty = self.lam * np.maximum(0, ranks - self.k_reg)
        return _cumulative_scores(probs, rng, self.randomized, penalty)


class ConformalClassifier:
    """Prediction sets with guaranteed coverage, calibrated on held-out probabilities.

    Parameters
    ----------
    method : name in ``CONFORMAL``: "lac", "aps" or "raps".
    alpha : miscoverage level in (0, 1); sets contain the true label with probability >= 1 - alpha.
    class_conditional : keep one quantile per class (coverage holds within every class).
    nonempty : always put the most probable label in the set. Sets only grow, so coverage stays
        ``>= 1 - alpha`` (the upper bound ``1 - alpha + 1 / (n + 1)`` no longer holds); an input no label
        fits gets its top label alone instead of an empty set.
    seed : seeds the uniform draws of randomised scores (``randomized=True``).
    **options : options of the score kind: ``randomized`` (aps, raps), ``lam`` and ``k_reg`` (raps).

    Attributes
    ----------
    quantiles : (C,) calibrated score threshold per class (all equal unless class-conditional; with
        importance weights, the threshold of an input of average weight).
    quantile : the single threshold (float), or None when class-conditional.
    weighted : None, or ``(scores, weights)`` of the calibration examples when calibrated under covariate
        shift (``calibrate(..., weights=)``): then each input's threshold depends on its own weight
        (Tibshirani et al. 2019; ``caveat.decide.shift.weighted_quantile``) and ``predict_set`` needs it.

    Examples
    --------
    >>> cp = ConformalClassifier("aps", alpha=0.1).calibrate(cal_probs, cal_labels)  # doctest: +SKIP
    >>> sets = cp.predict_set(test_probs)  # (N, C) bool  # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "lac",
        alpha: float = 0.1,
        *,
        class_conditional: bool = False,
        nonempty: bool = False,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        self.method = method
        kind = CONFORMAL.get(method)
        allowed = sorted(f.name for f in fields(kind))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(
                f"conformal method {method!r} has no option {', '.join(unknown)}; "
                f"its options are: {', '.join(allowed) or '(none)'}"
            )
        self.score = kind(**options)
        self.alpha = check_level("alpha", alpha, fix="Use e.g. alpha=0.1 for 90% coverage.")
        if not isinstance(class_conditional, bool):
            raise ConfigError(f"class_conditional must be True or False; got {class_conditional!r}")
        self.class_conditional = class_conditional
        if not isinstance(nonempty, bool):
            raise ConfigError(f"nonempty must be True or False; got {nonempty!r}")
        self.nonempty = nonempty
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise ConfigError(f"seed must be an integer or None; got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(seed)
        self.quantiles: np.ndarray | None = None
        self.quantile: float | None = None
        self.n_calibration: int | None = None
        self.weighted: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        state = "calibrated" if self.quantiles is not None else "not calibrated"
        return f"ConformalClassifier({self.method!r}, alpha={self.alpha}, {self.score}, {state})"

    @property
    def n_classes(self) -> int | None:
        """C seen at calibration, or None before."""
        return None if self.quantiles is None else int(self.quantiles.shape[0])

    def calibrate(self, probs: Any, labels: Any, *, weights: Any = None) -> ConformalClassifier:
        """Fit the quantile(s) on a calibration split never used for training or testing.

        Parameters
        ----------
        probs : (N, C) or (M, N, C) probabilities of the calibration inputs.
        labels : (N,) integer true classes.
        weights : (N,) importance weights ``p_target(x) / p_source(x)`` for coverage on a shifted target
            domain (Tibshirani et al. 2019); ``predict_set`` then needs the weights of its inputs too.

        Returns
        -------
        self
        """
        p = as_probs(probs)  # (N, C)
        y = check_labels(labels, p.shape[0], p.shape[1])  # (N,)
        true_scores = self.score.scores(p, self._rng)[np.arange(p.shape[0]), y]  # (N,)
        self.weighted = None
        if weights is not None:
            if self.class_conditional:
                raise ConfigError("importance weights and class_conditional=True do not combine; drop one")
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (p.shape[0],) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
                raise DataError(
                    f"weights must be ({p.shape[0]},) finite, non-negative and not all 0; got shape {w.shape}"
                )
            self.weighted = (true_scores, w)
            self.quantile = float(weighted_quantile(true_scores, w, np.array([w.mean()]), self.alpha)[0])
            self.quantiles = np.full(p.shape[1], self.quantile)
        elif self.class_conditional:
            self.quantiles = np.array(
                [
                    conformal_quantile(true_scores[y == k], self.alpha, what=f"calibration examples of class {k}")
                    for k in range(p.shape[1])
                ]
            )
            self.quantile = None
        else:
            self.quantile = conformal_quantile(true_scores, self.alpha)
            self.quantiles = np.full(p.shape[1], self.quantile)
        self.n_calibration = int(p.shape[0])
        return self

    def predict_set(self, probs: Any, *, weights: Any = None) -> np.ndarray:
        """Prediction sets for new inputs.

        Parameters
        ----------
        probs : (N, C) or (M, N, C) probabilities.
        weights : (N,) importance weights of the inputs; needed exactly when calibrated with weights.

        Returns
        -------
        (N, C) bool mask, True where the class is in the input's set.
        """
        if self.quantiles is None:
            raise NotCalibratedError(
                "this ConformalClassifier is not calibrated: call calibrate(probs, labels) on the "
                "calibration split first, then predict_set(probs)"
            )
        p = as_probs(probs)
        if p.shape[1] != self.quantiles.shape[0]:
            raise DataError(
                f"probs have {p.shape[1]} classes but the calibration had {self.quantiles.shape[0]}; "
                "pass outputs of the same model"
            )
        if self.weighted is None:
            if weights is not None:
                raise ConfigError("weights= was passed but this classifier was calibrated without importance weights")
            return self._top(p, self.score.scores(p, self._rng) <= self.quantiles[None, :])  # (N, C)
        if weights is None:
            raise DataError(
                "this classifier was calibrated under covariate shift: pass the inputs' importance weights, "
                "predict_set(probs, weights=...)"
            )
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (p.shape[0],):
            raise DataError(f"weights must have shape ({p.shape[0]},) to match probs; got {w.shape}")
        q = weighted_quantile(*self.weighted, w, self.alpha)  # (N,)
        return self._top(p, self.score.scores(p, self._rng) <= q[:, None])  # (N, C)

    def _top(self, probs: np.ndarray, sets: np.ndarray) -> np.ndarray:
        """``sets`` with each input's most probable label added when ``nonempty``."""
        if self.nonempty:
            sets[np.arange(len(probs)), probs.argmax(axis=1)] = True
        return sets

    def state(self) -> dict:
        """JSON-able settings and fitted quantiles (for ``caveat.json``); see ``from_state``."""
        return {
            "method": self.method,
            "alpha": self.alpha,
            "class_conditional": self.class_conditional,
            "nonempty": self.nonempty,
            "seed": self.seed,
            "options": asdict(self.score),
            "quantiles": None if self.quantiles is None else [float(q) for q in self.quantiles],
            "n_calibration": self.n_calibration,
            "weighted": None
            if self.weighted is None
            else {"scores": self.weighted[0].tolist(), "weights": self.weighted[1].tolist()},
        }

    @classmethod
    def from_state(cls, state: dict) -> ConformalClassifier:
        """Rebuild a classifier from ``state()``; calibrated if the state was."""
        missing = {"method", "alpha", "class_conditional", "seed", "options", "quantiles"} - set(state)
        if missing:
            raise ConfigError(f"conformal state lacks {', '.join(sorted(missing))}; save it with state()")
        obj = cls(
            state["method"],
            state["alpha"],
            class_conditional=state["class_conditional"],
            nonempty=state.get("nonempty", False),  # states written before it existed allow empty sets
            seed=state["seed"],
            **state["options"],
        )
        if state["quantiles"] is not None:
            obj.quantiles = np.asarray(state["quantiles"], dtype=np.float64)
            obj.quantile = None if obj.class_conditional else float(obj.quantiles[0])
            obj.n_calibration = state.get("n_calibration")
        if state.get("weighted"):
            obj.weighted = tuple(np.asarray(state["weighted"][k], dtype=np.float64) for k in ("scores", "weights"))
        return obj
