"""Learned probes and a density on the hidden states of the one greedy generation.

- :class:`LinearProbe`: L2-regularised logistic regression on standardised features. As a **correctness
  probe** it predicts that the greedy answer is wrong (Azaria & Mitchell 2023, "The Internal State of an LLM
  Knows When It's Lying"); as a **semantic-entropy probe** it predicts that the semantic entropy of K samples
  is high, so it needs no correctness labels (Kossen, Han, Razzak, Schut, Malik & Gal 2024, "Semantic Entropy
  Probes: Robust and Cheap Hallucination Detection in LLMs"), the entropy being binarised at
  :func:`best_split`.
- :func:`choose_feature`: the layer and position with the best held-out AUROC over k folds; :func:`choose_l2` then
  the penalty there.
- a **stacked probe**: a second logistic regression on the correctness probe's out-of-fold log-odds and the
  answer's token statistics (maximum sequence probability, mean NLL, mean token entropy): stacked
  generalisation (Wolpert 1992, "Stacked generalization"), so the combination is learned on scores the probe
  gave questions it was not fitted on. Still one greedy pass.
- :class:`ProbeSet`: the fitted probes, and a Mahalanobis density (Vazhentsev et al. 2022, "Uncertainty
  Estimation of Transformer Predictions for Misclassification Detection", here one Gaussian over the
  training generations' hidden states, :class:`~caveat.uncertainty.methods.mahalanobis.Mahalanobis`) and a robust
  one (kernel PCA and a minimum-covariance-determinant Gaussian, :class:`~caveat.uncertainty.methods.rde.
  RobustDensity`), saved as safetensors plus one JSON file with the layer/position of each (never pickle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import error_detection_auroc
from caveat.generate.internals import POSITIONS, hidden_features
from caveat.io import write_json_atomic
from caveat.uncertainty.errors import NotFittedError
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.rde import RobustDensity

PROBES_VERSION = 1
KINDS = ("correctness", "semantic_entropy", "mahalanobis", "rde", "stacked")
DENSITIES = {"mahalanobis": Mahalanobis, "rde": RobustDensity}  # kinds that score by density, not a probe
L2_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # penalties tried at the chosen layer and position


class LinearProbe:
    """Logistic regression ``P(target = 1 | x) = sigmoid(w . (x - mean) / scale + b)``, fitted by Newton's method.

    Parameters
    ----------
    l2 : penalty ``l2 / 2 * |w|^2`` on the weights of the standardised features (not the bias); > 0, so the
        fit is unique even when there are more dimensions than examples.
    """

    def __init__(self, *, l2: float = 1.0, max_iter: int = 50) -> None:
        if not l2 > 0:
            raise ConfigError(f"l2 must be > 0; got {l2}. E.g. 1.0")
        self.l2, self.max_iter = float(l2), int(max_iter)
        self.mean = self.scale = self.weight = None
        self.bias = 0.0

    def fit(self, features: np.ndarray, targets: np.ndarray) -> LinearProbe:
        """Fit on (N, D) features and (N,) binary targets; returns self."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets).astype(np.float64)
        if x.ndim != 2 or y.shape != (len(x),):
            raise DataError(f"fit takes (N, D) features and (N,) targets; got {x.shape} and {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise DataError("targets must be 0/1 (or bool)")
        self.mean = x.mean(0)
        self.scale = np.where(x.std(0) > 1e-8, x.std(0), 1.0)
        z = np.hstack([(x - self.mean) / self.scale, np.ones((len(x), 1))])  # (N, D + 1), last column the bias
        penalty = np.full(z.shape[1], self.l2)
        penalty[-1] = 1e-6  # the bias is (almost) free
        theta = np.zeros(z.shape[1])
        for _ in range(self.max_iter):
            p = 1 / (1 + np.exp(-(z @ theta)))  # (N,)
            grad = z.T @ (p - y) + penalty * theta  # (D + 1,)
            hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)  # (D + 1, D + 1)
            step = np.linalg.solve(hess, grad)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        self.weight, self.bias = theta[:-1], float(theta[-1])
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N,) ``P(target = 1)`` of (N, D) features; for both probes here, higher = more uncertain."""
        if self.weight is None:
            raise NotFittedError("the probe is not fitted; call fit(features, targets) first")
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != len(self.weight):
            raise ConfigError(f"the probe was fitted on {len(self.weight)} features; got {x.shape[1]}")
        return 1 / (1 + np.exp(-(((x - self.mean) / self.scale) @ self.weight + self.bias)))

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for ``safetensors.numpy.save_file``."""
        if self.weight is None:
            raise NotFittedError("the probe is not fitted; call fit(features, targets) first")
        return {"mean": self.mean, "scale": self.scale, "weight": self.weight, "bias": np.array([self.bias])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> LinearProbe:
        probe = cls()
        probe.mean, probe.scale, probe.weight = state["mean"], state["scale"], state["weight"]
        probe.bias = float(state["bias"][0])
        return probe


def best_split(values: np.ndarray) -> float:
    """The threshold that splits ``values`` into a low and a high group with the least within-group squared error.

    Kossen et al. (2024) binarise semantic entropy at such a best split rather than a fixed threshold.
    Returns a value between the two groups (``values > threshold`` is the high group).
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) < 2 or v[0] == v[-1]:
        raise DataError("semantic entropies are all equal: nothing to split; use more questions or more samples")
    best, threshold = np.inf, v[0]
    for k in range(1, len(v)):
        if v[k] == v[k - 1]:
            continue
        sse = ((v[:k] - v[:k].mean()) ** 2).sum() + ((v[k:] - v[k:].mean()) ** 2).sum()
        if sse < best:
            best, threshold = sse, (v[k - 1] + v[k]) / 2
    return float(threshold)


def _folds(targets: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` folds, stratified by target so that each held-out fold has both classes when possible."""
    rng = np.random.default_rng(seed)
    index = np.zeros(len(targets), dtype=int)
    for value in (0, 1):
        where = rng.permutation(np.flatnonzero(targets == value))
        index[where] = np.arange(len(where)) % k
    return [np.flatnonzero(index == f) for f in range(k)]


def out_of_fold(features: np.ndarray, targets: np.ndarray, *, folds: int = 5, seed: int = 0, l2: float = 1.0):
    """(N,) probe scores of each example from a probe fitted on the other folds (stratified k-fold)."""
    t = np.asarray(targets).astype(bool)
    scores = np.zeros(len(t))
    for held in _folds(t, folds, seed):
        train = np.setdiff1d(np.arange(len(t)), held)
        scores[held] = LinearProbe(l2=l2).fit(features[train], t[train]).score(features[held])
    return scores


def held_out_auroc(features: np.ndarray, targets: np.ndarray, *, folds: int = 5, seed: int = 0, l2: float = 1.0):
    """AUROC of out-of-fold probe scores for the targets, from (N, D) features: how well a probe generalises."""
    t = np.asarray(targets).astype(bool)
    return float(error_detection_auroc(out_of_fold(features, t, folds=folds, seed=seed, l2=l2), t))


def choose_l2(
    features: np.ndarray, targets: np.ndarray, *, grid=L2_GRID, folds: int = 5, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """The penalty in ``grid`` with the best held-out AUROC on (N, D) features; ``(l2, {str(l2): AUROC})``."""
    table = {f"{l2:g}": held_out_auroc(features, targets, folds=folds, seed=seed, l2=l2) for l2 in grid}
    best = max(grid, key=lambda l2: table[f"{l2:g}"])  # first best on ties: the weakest penalty
    return float(best), table


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(q / (1 - q))


def choose_feature(
    features: dict[str, np.ndarray], targets: np.ndarray, *, folds: int = 5, seed: int = 0, l2: float = 1.0
) -> tuple[int, str, dict[str, list[float]]]:
    """The (layer, position) whose probe has the best held-out AUROC.

    Parameters
    ----------
    features : position -> (N, L + 1, D) hidden states of every layer.
    targets : (N,) binary targets; with fewer than ``folds`` of a class, that many folds are used.

    Returns
    -------
    ``(layer, position, {position: [held-out AUROC per layer]})``
    """
    t = np.asarray(targets).astype(bool)
    k = min(folds, int(t.sum()), int((~t).sum()))
    if k < 2:
        raise DataError(
            f"targets have {int(t.sum())} positives and {int((~t).sum())} negatives; a probe needs at least two "
            "of each: use more questions"
        )
    table = {
        pos: [held_out_auroc(x[:, lay], t, folds=k, seed=seed, l2=l2) for lay in range(x.shape[1])]
        for pos, x in features.items()
    }
    candidates = [(pos, lay) for pos, row in table.items() for lay in range(len(row))]
    position, layer = max(candidates, key=lambda pl: table[pl[0]][pl[1]])  # first best on ties
    return layer, position, table


@dataclass
class ProbeSet:
    """Fitted single-pass scorers of one model: ``kind -> (scorer, spec)``; spec holds ``layer`` and ``position``.

    ``meta`` records the model, settings and held-out AUROCs the probes were fitted with.
    """

    scorers: dict[str, object] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def add(self, kind: str, scorer, *, layer: int, position: str, **info) -> ProbeSet:
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}; got {kind!r}")
        if position not in POSITIONS:
            raise ConfigError(f"position must be one of {POSITIONS}; got {position!r}")
        self.scorers[kind], self.specs[kind] = scorer, {"layer": int(layer), "position": position, **info}
        return self

    def score(self, kind: str, extra: dict, inputs: Mapping[str, float] | None = None) -> float:
        """The uncertainty ``kind`` gives one generation, from its ``Generation.extra`` hidden states.

        ``"stacked"`` also takes ``inputs``: the generation's scores named in its spec's ``inputs``.
        """
        if kind not in self.scorers:
            raise ConfigError(f"these probes have no {kind!r} scorer (they have {sorted(self.scorers)}); refit them")
        spec = self.specs[kind]
        x = hidden_features(extra, spec["layer"], spec["position"])[None]  # (1, D)
        if kind != "stacked":
            return float(self.scorers[kind].score(x)[0])
        names = spec["inputs"]
        missing = [n for n in names if inputs is None or n not in inputs]
        if missing:
            raise ConfigError(f"the stacked probe needs the scores {names}; missing {missing}")
        probe = logit(self.scorers["correctness"].score(x))  # (1,)
        row = np.array([[probe[0], *(float(inputs[n]) for n in names)]])  # (1, 1 + len(names))
        return float(self.scorers[kind].score(row)[0])

    def save(self, folder: str | Path) -> Path:
        """Write ``probes.json`` and one ``<kind>.safetensors`` per scorer into ``folder``."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, scorer in self.scorers.items():
            arrays = {k: np.ascontiguousarray(v) for k, v in scorer.state().items()}
            save_file(arrays, str(folder / f"{kind}.safetensors"))
        write_json_atomic(folder / "probes.json", {"version": PROBES_VERSION, "probes": self.specs, **self.meta})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ProbeSet:
        from safetensors.numpy import load_file

        folder = Path(folder)
        spec_file = folder / "probes.json"
        if not spec_file.is_file():
            raise ConfigError(f"{folder} holds no probes.json; fit probes with caveat generate-fit --out {folder}")
        meta = json.loads(spec_file.read_text(encoding="utf-8"))
        if meta.get("version") != PROBES_VERSION:
            raise DataError(f"{spec_file} has version {meta.get('version')}; this caveat reads {PROBES_VERSION}")
        out = cls(meta={k: v for k, v in meta.items() if k not in ("version", "probes")})
        for kind, spec in meta["probes"].items():
            state = load_file(str(folder / f"{kind}.safetensors"))
            scorer = DENSITIES.get(kind, LinearProbe).from_state(state)
            out.add(kind, scorer, **spec)
        return out
