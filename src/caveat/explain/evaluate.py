"""``caveat evaluate RUN --explain-faithfulness``: how faithful, stable and costly each method is on a run.

For ``max_examples`` texts of a labelled split (a seeded sample), every method explains the predicted
label's calibrated probability, and ``faithfulness.py`` scores each explanation (ERASER
comprehensiveness and sufficiency, deletion AOPC) next to random rankings of the same words. Also:
rank agreement between methods, stability (the same input explained with another seed), cost
(model evaluations and seconds per explanation, all methods in the same process), and for the
inputs the calibrated policy does not answer, whether deleting the 3 words that raise the
uncertainty most lowers it more than deleting 3 random words.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError
from caveat.explain import EXPLAINERS, METHODS, ExplainModel
from caveat.explain.faithfulness import faithfulness, random_baseline, rank_agreement, summarise, top_k_drop
from caveat.models.rundir import open_run
from caveat.progress import phase, subject
from caveat.types import Task

DEFAULT_OPTIONS = {"ig": {"steps": 32}, "shap": {"max_evals": 500}, "lime": {"samples": 1000}, "occlusion": {}}
STOCHASTIC = ("lime",)  # explained twice with different seeds (shap's partition explainer does not sample)
SHOWN = 3  # examples kept per method for the report


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def _abstained(model: ExplainModel, run, texts: list[str]) -> tuple[np.ndarray, str]:
    """(N,) bool: inputs the calibrated policy does not answer, and how that was decided."""
    caveats = model.predictor.calibration
    preds = model.predictor.predict(texts)
    if caveats is not None:
        _, _, decision = caveats.decide(preds)
        return np.asarray(decision.action) != "answer", "the calibrated policy abstains or routes"
    logits = preds.logits[0]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
    return h >= np.quantile(h, 0.75), "uncalibrated run: the 25% most uncertain inputs (entropy) stand in"


_FIGURES = ("spearman", "kendall", "top_k_overlap")  # the rank-agreement figures averaged in the summary


@dataclass
class _Figures:
    """Per-text figures gathered while explaining, summarised once every text is done."""

    rows: dict[str, list[dict]]  # faithfulness rows per method, and of the random baseline
    costs: dict[str, list[tuple[int, float]]]  # (model evaluations, seconds) per explanation
    agreement: dict[str, list[dict]]  # rank agreement per "a~b" method pair
    stability: dict[str, list[dict]]  # rank agreement with a reseeded explanation (sampling methods)
    examples: dict[str, list[dict]]  # the first SHOWN explanations per method, for the report

    @classmethod
    def empty(cls, methods: list[str]) -> _Figures:
        """Empty lists for every method, pair and sampling method."""
        return cls(
            rows={m: [] for m in [*methods, "random"]},
            costs={m: [] for m in methods},
            agreement={f"{a}~{b}": [] for a, b in itertools.combinations(methods, 2)},
            stability={m: [] for m in methods if m in STOCHASTIC},
            examples={m: [] for m in methods},
        )


def _open_text_run(run_dir: str | Path):
    """Open the run, failing unless it is a text-classification run."""

    run = open_run(run_dir)
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            "{explain} (faithfulness of explanations) is for text-classification runs so far; explain NER spans "
            "one at a time (caveat explain RUN SENTENCE --span WORDS)",
            fields=("explain",),
        )
    return run


def _checked_methods(methods, max_examples: int, options: dict | None) -> tuple[list[str], dict[str, dict]]:
    """(methods, options per method), failing on unknown names or a bad ``max_examples`` before any work."""
    methods = list(methods)
    for m in methods:
        EXPLAINERS.get(m)  # unknown names fail before any work
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ConfigError(f"max_examples must be a positive integer; got {max_examples!r}")
    return methods, {m: {**DEFAULT_OPTIONS.get(m, {}), **(options or {}).get(m, {})} for m in methods}


def _sample_texts(run, data: str, max_examples: int, seed: int) -> list[str]:
    """The split's non-blank texts, a seeded sample of ``max_examples`` (kept in order) when there are more."""

    split = resolve_split(run, data)
    texts = [ex.text for ex in split.examples if ex.text.split()]
    if len(texts) > max_examples:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_examples, replace=False))
        texts = [texts[i] for i in pick]
    return texts


def _explain_texts(
    model: ExplainModel,
    texts: list[str],
    methods: list[str],
    opts: dict[str, dict],
    *,
    seed: int,
    random_draws: int,
    top_k: int,
    stability_examples: int,
) -> _Figures:
    """Explain each text's predicted label with every method, next to random rankings, gathering the figures."""
    figures = _Figures.empty(methods)
    with phase(f"explain with {', '.join(methods)}", total=len(texts)) as bar:
        for i, text in enumerate(texts):
            explained = model.explained(text, "predicted")
            attributions = {}
            for m in methods:
                attributions[m] = _explain_with(
                    figures, m, explained, text, opts[m], seed=seed, top_k=top_k, reseed=i < stability_examples
                )
            figures.rows["random"].append(
                random_baseline(explained.score, explained.n_features, draws=random_draws, seed=seed + i)
            )
            for a, b in itertools.combinations(methods, 2):
                figures.agreement[f"{a}~{b}"].append(rank_agreement(attributions[a], attributions[b], k=top_k))
            bar.advance()
    return figures


def _explain_with(
    figures: _Figures, m: str, explained, text: str, opts: dict, *, seed: int, top_k: int, reseed: bool
) -> np.ndarray:
    """Explain with method ``m`` and record its cost, faithfulness, example and stability; returns its attributions."""
    a = EXPLAINERS.get(m)(explained, seed=seed, **opts)
    attributions = a.word_attributions[a.features]
    figures.costs[m].append((a.evaluations, a.seconds))
    figures.rows[m].append(faithfulness(explained.score, attributions))
    if len(figures.examples[m]) < SHOWN:
        figures.examples[m].append(a.to_dict() | {"text": text})
    if m in figures.stability and reseed:
        again = EXPLAINERS.get(m)(explained, seed=seed + 1, **opts)
        figures.stability[m].append(rank_agreement(attributions, again.word_attributions[again.features], k=top_k))
    return attributions


def _uncertainty_check(
    model: ExplainModel,
    run,
    texts: list[str],
    methods: list[str],
    opts: dict[str, dict],
    *,
    seed: int,
    top_k: int,
    uncertainty_examples: int,
) -> dict:
    """Whether deleting each method's top-k words lowers the uncertainty of unanswered inputs more than random."""
    unsure, how = _abstained(model, run, texts)
    chosen = [texts[i] for i in np.flatnonzero(unsure)[:uncertainty_examples]]
    uncertainty = {
        "selected_by": how,
        "selected": int(unsure.sum()),
        "n": len(chosen),
        "k": top_k,
        "score": "entropy",
        "methods": {},
    }
    with phase("explain the uncertainty of unanswered inputs", total=len(methods) * len(chosen)) as bar:
        for m in methods:
            drops = []
            for text in chosen:
                explained = model.explained(text, "entropy")  # one score for every method
                a = EXPLAINERS.get(m)(explained, seed=seed, **opts[m])
                drops.append(top_k_drop(explained.score, a.word_attributions[a.features], k=top_k, seed=seed))
                bar.advance()
            uncertainty["methods"][m] = {
                "lower_than_random": _mean([d["lower_than_random"] for d in drops]),
                "top_drop": _mean([d["top"] for d in drops]),
                "random_drop": _mean([d["random"] for d in drops]),
            }
    return uncertainty


def _method_summary(rows: list[dict], costs: list[tuple[int, float]] | None) -> dict:
    """Faithfulness means of one method (or the random baseline), with the explanation's cost when it has one."""
    summary = summarise(rows)
    summary.pop("evaluations", None)  # the metric's own model calls, not the explanation's cost
    if costs is not None:
        ev, sec = np.array([c[0] for c in costs], float), np.array([c[1] for c in costs], float)
        summary["evaluations"] = {"mean": float(ev.mean()), "se": _standard_error(ev)}
        summary["seconds"] = {"mean": float(sec.mean()), "median": float(np.median(sec)), "se": _standard_error(sec)}
    return summary


def _standard_error(values: np.ndarray) -> float:
    """Standard error of the mean; 0 for a single value, which has no spread to estimate."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _agreement_summary(agreement: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean rank agreement of each method pair."""
    return {pair: {k: _mean([v[k] for v in values]) for k in _FIGURES} for pair, values in agreement.items()}


def _stability_summary(stability: dict[str, list[dict]], seed: int) -> dict[str, dict]:
    """Mean rank agreement of each sampling method with itself under the next seed."""
    return {
        m: {"seeds": [seed, seed + 1], "n": len(values), **{k: _mean([v[k] for v in values]) for k in _FIGURES}}
        for m, values in stability.items()
    }


def explanation_faithfulness(
    run_dir: str | Path,
    data: str = "test",
    *,
    methods: tuple[str, ...] | list[str] = METHODS,
    max_examples: int = 200,
    seed: int = 0,
    options: dict | None = None,
    random_draws: int = 5,
    top_k: int = 3,
    stability_examples: int = 50,
    uncertainty_examples: int = 50,
    batch_size: int | None = None,
) -> dict:
    """Faithfulness, agreement, stability, cost and uncertainty figures of ``methods`` on ``data``.

    Parameters
    ----------
    run_dir : a text-classification run (calibrated or not).
    data : a split name or a labelled file, as for ``caveat evaluate``.
    methods : registered method names.
    max_examples : texts explained (a sample seeded by ``seed``; all when the split is smaller).
    options : per method, overrides of ``DEFAULT_OPTIONS`` (e.g. ``{"lime": {"samples": 5000}}``).
    random_draws : random rankings averaged for the baseline.
    top_k : words deleted for the uncertainty check.
    stability_examples : the first texts explained a second time with another seed (sampling methods).
    uncertainty_examples : most inputs of the uncertainty check (the first of those selected).
    """
    run = _open_text_run(run_dir)
    methods, opts = _checked_methods(methods, max_examples, options)
    texts = _sample_texts(run, data, max_examples, seed)
    model = ExplainModel.from_run(run.path, batch_size=batch_size)
    draws = dict(seed=seed, random_draws=random_draws, top_k=top_k, stability_examples=stability_examples)
    with subject(data):  # what the explanations are of, for the progress lines
        figures = _explain_texts(model, texts, methods, opts, **draws)
        uncertainty = _uncertainty_check(
            model, run, texts, methods, opts, seed=seed, top_k=top_k, uncertainty_examples=uncertainty_examples
        )
    target = f"{'calibrated ' if model.calibrated else ''}probability of the predicted label"
    return {
        "data": data,
        "n": len(texts),
        "seed": seed,
        "options": opts,
        "random_draws": random_draws,
        "target": target,
        "methods": {m: _method_summary(figures.rows[m], figures.costs.get(m)) for m in [*methods, "random"]},
        "agreement": _agreement_summary(figures.agreement),
        "stability": _stability_summary(figures.stability, seed),
        "uncertainty": uncertainty,
        "examples": figures.examples,
    }
