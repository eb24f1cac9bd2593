"""How faithful word attributions are to the model: delete the words they rank highest and watch ``f``.

An explanation gives one attribution per feature word for a scalar quantity ``f`` of an input text
(the probability of the predicted label, an uncertainty score such as entropy, ...). The model is
reached only through a batched black box::

    score(keep: (M, F) bool) -> (M,) float     # keep[m, j] False = word j deleted from the text

A row of all True is the full input, ``f(x)``. Every function here builds all the masks it needs,
drops duplicate rows and calls ``score`` exactly once.

Figures (higher comprehensiveness, lower sufficiency, higher deletion AOPC = more faithful):

* **comprehensiveness** and **sufficiency** -- DeYoung, Jain, Rajani, Lehman, Xiong, Socher &
  Wallace (2020), "ERASER: A Benchmark to Evaluate Rationalized NLP Models", ACL. With ``r_k`` the
  top-``k`` words of the ranking, comprehensiveness ``= f(x) - f(x \\ r_k)`` and sufficiency
  ``= f(x) - f(r_k)``, each averaged over the bins ``k`` in {1, 5, 10, 20, 50} % of the words
  (their "AOPC" over bins). ``k = max(1, ceil(fraction * F))``.
* **deletion AOPC** -- Samek, Binder, Montavon, Lapuschkin & Müller (2017), "Evaluating the
  visualization of what a deep neural network has learned", IEEE TNNLS:
  ``1 / (K + 1) * sum_{k=0..K} (f(x) - f(x without its top-k words))`` with ``K = min(steps, F)``.

``random_baseline`` gives the same figures for random rankings, the floor an explanation must beat;
``top_k_drop`` compares deleting the top-``k`` words with deleting ``k`` random ones;
``rank_agreement`` compares two attributions; ``summarise`` averages per-example figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from caveat.errors import ConfigError

Score = Callable[[np.ndarray], np.ndarray]

FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
DELETION_STEPS = 10
_FIGURES = ("comprehensiveness", "sufficiency", "deletion_aopc")


def top_k_count(n_features: int, fraction: float) -> int:
    """Number of words in the top ``fraction`` share of ``n_features`` words.

    Parameters
    ----------
    n_features : F >= 0, the number of feature words.
    fraction : share of the words, in (0, 1].

    Returns
    -------
    int : ``max(1, ceil(fraction * F))`` capped at F; 0 when F is 0.
    """
    if n_features < 0:
        raise ConfigError(f"n_features={n_features} is negative; pass the number of feature words (>= 0).")
    _check_fractions([fraction])
    if n_features == 0:
        return 0
    return min(n_features, max(1, math.ceil(fraction * n_features)))


def ranking(attributions: np.ndarray) -> np.ndarray:
    """Feature indices from the most positive attribution to the most negative.

    Parameters
    ----------
    attributions : (F,) finite attributions.

    Returns
    -------
    (F,) int indices; ties keep their order of position (stable argsort of ``-attributions``).
    """
    a = _check_attributions(attributions, allow_empty=True)
    return np.argsort(-a, kind="stable")


def faithfulness(
    score: Score,
    attributions: np.ndarray,
    *,
    fractions: Sequence[float] = FRACTIONS,
    deletion_steps: int = DELETION_STEPS,
) -> dict:
    """ERASER comprehensiveness/sufficiency and Samek's deletion AOPC of one attribution.

    Parameters
    ----------
    score : black box, (M, F) bool keep masks -> (M,) values of ``f``; called exactly once.
    attributions : (F,) finite attributions of the F feature words, F >= 1.
    fractions : bins in (0, 1], the shares of the words deleted / kept.
    deletion_steps : K's upper bound for deletion AOPC (K = min(deletion_steps, F)), >= 1.

    Returns
    -------
    dict : ``value`` (f(x)), ``comprehensiveness``, ``sufficiency`` (means over bins),
        ``comprehensiveness_at`` / ``sufficiency_at`` ({str(fraction): value}), ``deletion_aopc``
        and ``evaluations`` (distinct rows scored).
    """
    a = _check_attributions(attributions)
    fractions = _check_fractions(fractions)
    _check_positive("deletion_steps", deletion_steps)
    masks = _ranking_masks(ranking(a), fractions, deletion_steps)
    values, evaluations = _score_unique(score, masks)
    return {**_figures(values, fractions), "evaluations": evaluations}


def random_baseline(
    score: Score,
    n_features: int,
    *,
    draws: int = 5,
    seed: int = 0,
    fractions: Sequence[float] = FRACTIONS,
    deletion_steps: int = DELETION_STEPS,
) -> dict:
    """The figures of ``faithfulness`` for random rankings, averaged over ``draws`` rankings.

    Parameters
    ----------
    score : black box, (M, F) bool keep masks -> (M,) values of ``f``; called exactly once for all draws.
    n_features : F >= 1, the number of feature words.
    draws : number of random rankings, each ``np.random.default_rng(seed).permutation(F)`` in turn.
    seed : seed of the generator.
    fractions, deletion_steps : as in ``faithfulness``.

    Returns
    -------
    dict : the keys of ``faithfulness``, each figure (and each bin) the mean over the draws;
        ``evaluations`` counts the distinct rows of all draws together.
    """
    _check_positive("n_features", n_features)
    _check_positive("draws", draws)
    fractions = _check_fractions(fractions)
    _check_positive("deletion_steps", deletion_steps)
    rng = np.random.default_rng(seed)
    per_draw = [_ranking_masks(rng.permutation(n_features), fractions, deletion_steps) for _ in range(draws)]
    values, evaluations = _score_unique(score, np.concatenate(per_draw))
    rows = [_figures(v, fractions) for v in np.split(values, draws)]
    return {**_mean_figures(rows), "evaluations": evaluations}


def top_k_drop(score: Score, attributions: np.ndarray, k: int = 3, *, random_draws: int = 10, seed: int = 0) -> dict:
    """Drop of ``f`` when the top-``k`` words are deleted, against deleting ``k`` random words.

    Parameters
    ----------
    score : black box, (M, F) bool keep masks -> (M,) values of ``f``; called exactly once.
    attributions : (F,) finite attributions, F >= 1.
    k : words deleted, >= 1; capped at F.
    random_draws : random k-subsets, each ``rng.choice(F, size=k, replace=False)`` in turn with
        ``rng = np.random.default_rng(seed)``.
    seed : seed of the generator.

    Returns
    -------
    dict : ``top`` (f(x) - f(x without its top-k words)), ``random`` (mean of f(x) - f(x without a
        random k-subset)), ``lower_than_random`` (``top > random``: deleting the top words lowers
        ``f`` more), ``k`` (after capping) and ``evaluations`` (distinct rows scored).
    """
    a = _check_attributions(attributions)
    _check_positive("k", k)
    _check_positive("random_draws", random_draws)
    n, k = a.size, min(k, a.size)
    rng = np.random.default_rng(seed)
    subsets = [ranking(a)[:k]] + [rng.choice(n, size=k, replace=False) for _ in range(random_draws)]
    masks = np.ones((1 + len(subsets), n), dtype=bool)
    for row, subset in enumerate(subsets, start=1):
        masks[row, subset] = False
    values, evaluations = _score_unique(score, masks)
    drops = values[0] - values[1:]
    top, rand = float(drops[0]), float(drops[1:].mean())
    return {"top": top, "random": rand, "lower_than_random": bool(top > rand), "k": k, "evaluations": evaluations}


def rank_agreement(a: np.ndarray, b: np.ndarray, k: int = 3) -> dict:
    """How much two attributions of the same words agree.

    Parameters
    ----------
    a, b : (F,) finite attributions of the same F >= 1 words.
    k : size of the top sets compared, >= 1; capped at F.

    Returns
    -------
    dict : ``spearman`` and ``kendall`` rank correlations (0.0 when either input is constant, where
        they are undefined) and ``top_k_overlap`` = |top-k(a) ∩ top-k(b)| / k.
    """
    a, b = _check_attributions(a), _check_attributions(b)
    if a.shape != b.shape:
        raise ConfigError(f"a has shape {a.shape} and b {b.shape}; pass attributions of the same words.")
    _check_positive("k", k)
    k = min(k, a.size)
    overlap = len(set(ranking(a)[:k].tolist()) & set(ranking(b)[:k].tolist())) / k
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"spearman": 0.0, "kendall": 0.0, "top_k_overlap": overlap}
    spearman = float(stats.spearmanr(a, b).statistic)
    kendall = float(stats.kendalltau(a, b).statistic)
    return {"spearman": spearman, "kendall": kendall, "top_k_overlap": overlap}


def summarise(rows: list[dict]) -> dict:
    """Mean and standard error of each numeric figure across examples.

    Parameters
    ----------
    rows : N >= 1 dicts from ``faithfulness`` / ``random_baseline`` (or ``top_k_drop``), one per example.
        Numeric keys are summarised; nested dicts only when their key ends in ``_at`` (per bin);
        anything else is ignored.

    Returns
    -------
    dict : ``{key: {"mean": m, "se": s}}`` per numeric key, ``{key: {bin: {"mean", "se"}}}`` per
        ``*_at`` key, and ``n`` = N. ``se = std(ddof=1) / sqrt(N)``, 0 when N is 1.
    """
    if not rows:
        raise ConfigError("summarise got no rows; pass one dict per explained example.")
    out: dict = {}
    for key, first in rows[0].items():
        if _is_number(first):
            out[key] = _mean_se([_field(r, key) for r in rows], key)
        elif isinstance(first, dict) and key.endswith("_at"):
            out[key] = {b: _mean_se([_field(_field(r, key), b) for r in rows], f"{key}[{b}]") for b in first}
    out["n"] = len(rows)
    return out


# ---------------------------------------------------------------- masks and figures


def _ranking_masks(order: np.ndarray, fractions: list[float], steps: int) -> np.ndarray:
    """Keep masks of one ranking, in a fixed layout read back by ``_figures``.

    Parameters
    ----------
    order : (F,) feature indices, most important first.
    fractions : B bins.
    steps : deletion steps; K = min(steps, F).

    Returns
    -------
    (1 + 2B + K, F) bool: the full input, then B "top-k deleted" rows, B "only top-k kept" rows,
    then K rows with the top 1..K words deleted.
    """
    n = order.size
    counts = [top_k_count(n, f) for f in fractions]
    deleted = [_without(order[:c], n) for c in counts]
    kept = [~_without(order[:c], n) for c in counts]
    steps_rows = [_without(order[:k], n) for k in range(1, min(steps, n) + 1)]
    return np.stack([np.ones(n, dtype=bool), *deleted, *kept, *steps_rows])


def _without(indices: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool keep mask with ``indices`` deleted."""
    mask = np.ones(n, dtype=bool)
    mask[indices] = False
    return mask


def _figures(values: np.ndarray, fractions: list[float]) -> dict:
    """Figures of one ranking from the (1 + 2B + K,) values of its ``_ranking_masks`` rows."""
    b = len(fractions)
    full = float(values[0])
    comp = full - values[1 : 1 + b]
    suff = full - values[1 + b : 1 + 2 * b]
    deletion = np.concatenate([[0.0], full - values[1 + 2 * b :]])
    keys = [_bin_key(f) for f in fractions]
    return {
        "value": full,
        "comprehensiveness": float(comp.mean()),
        "sufficiency": float(suff.mean()),
        "comprehensiveness_at": dict(zip(keys, comp.tolist())),
        "sufficiency_at": dict(zip(keys, suff.tolist())),
        "deletion_aopc": float(deletion.mean()),
    }


def _mean_figures(rows: list[dict]) -> dict:
    """Figures averaged over rankings (each ``*_at`` bin too)."""
    out = {key: float(np.mean([r[key] for r in rows])) for key in ("value", *_FIGURES)}
    for key in ("comprehensiveness_at", "sufficiency_at"):
        out[key] = {b: float(np.mean([r[key][b] for r in rows])) for b in rows[0][key]}
    return out


def _bin_key(fraction: float) -> str:
    """Dict key of a bin: ``0.2 -> "0.2"``."""
    return str(float(fraction))


def _score_unique(score: Score, masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Score the distinct rows of ``masks`` in one call.

    Parameters
    ----------
    score : the black box.
    masks : (M, F) bool keep masks, possibly with repeated rows.

    Returns
    -------
    values : (M,) value of ``f`` per row of ``masks``.
    evaluations : U, the distinct rows scored.
    """
    unique, inverse = np.unique(masks, axis=0, return_inverse=True)
    values = np.asarray(score(unique), dtype=float)
    if values.shape != (len(unique),):
        raise ConfigError(
            f"score returned shape {values.shape} for {len(unique)} masks; it must return one value of f "
            f"per mask row, shape ({len(unique)},)."
        )
    if not np.all(np.isfinite(values)):
        raise ConfigError(f"score returned non-finite values {values[~np.isfinite(values)][:5]}; f must be finite.")
    return values[inverse.reshape(-1)], len(unique)


# ---------------------------------------------------------------- validation


def _check_attributions(attributions: np.ndarray, *, allow_empty: bool = False) -> np.ndarray:
    """(F,) float copy of ``attributions`` after checking it is 1-D, finite and (unless allowed) non-empty."""
    a = np.asarray(attributions, dtype=float)
    if a.ndim != 1:
        raise ConfigError(f"attributions have shape {a.shape}; pass a 1-D array, one value per feature word.")
    if a.size == 0 and not allow_empty:
        raise ConfigError(
            "attributions are empty (F = 0 feature words); there is nothing to delete, explain an input with words."
        )
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ConfigError(
            f"attributions are not finite at positions {bad[:5].tolist()} ({a[bad[:5]].tolist()}); "
            "fix or drop them first."
        )
    return a


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    """The fractions as floats, after checking each is in (0, 1], there is one and none repeats."""
    values = [float(f) for f in fractions]
    if not values:
        raise ConfigError("fractions is empty; pass shares of the words in (0, 1], e.g. (0.01, 0.05, 0.1, 0.2, 0.5).")
    for f in values:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"fraction {f} is outside (0, 1]; pass shares of the words such as 0.1 for 10%.")
    if len(set(values)) != len(values):
        raise ConfigError(f"fractions {values} repeat a bin; pass each share once.")
    return values


def _check_positive(name: str, value: int) -> None:
    """Raise unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1.")


def _is_number(value: object) -> bool:
    """True for ints, floats and bools (numpy's included)."""
    return isinstance(value, (int, float, bool, np.number, np.bool_))


def _field(row: dict, key: str) -> object:
    """``row[key]``, with a clear error when a row lacks it."""
    if key not in row:
        raise ConfigError(f"a row lacks {key!r} that the first row has; summarise rows made by the same function.")
    return row[key]


def _mean_se(values: list, key: str) -> dict:
    """Mean and standard error (ddof=1; 0 for one value) of ``values``."""
    if not all(_is_number(v) for v in values):
        raise ConfigError(f"{key!r} is not numeric in every row; summarise rows made by the same function.")
    x = np.asarray(values, dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return {"mean": float(x.mean()), "se": se}
