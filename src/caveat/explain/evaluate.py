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
import logging
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError
from caveat.explain import EXPLAINERS, METHODS, ExplainModel
from caveat.explain.faithfulness import faithfulness, random_baseline, rank_agreement, summarise, top_k_drop
from caveat.types import Task

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = {"ig": {"steps": 32}, "shap": {"max_evals": 500}, "lime": {"samples": 1000}, "occlusion": {}}
STOCHASTIC = ("lime",)  # explained twice with different seeds (shap's partition explainer does not sample)
SHOWN = 3  # examples kept per method for the report


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def _abstained(model: ExplainModel, run, texts: list[str]) -> tuple[np.ndarray, str]:
    """(N,) bool: inputs the calibrated policy does not answer, and how that was decided."""
    from caveat.calibrate import Caveats

    caveats = Caveats.from_run(run)
    preds = model.predictor.predict(texts)
    if caveats is not None:
        _, _, decision = caveats.decide(preds)
        return np.asarray(decision.action) != "answer", "the calibrated policy abstains or routes"
    logits = preds.logits[0]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
    return h >= np.quantile(h, 0.75), "uncalibrated run: the 25% most uncertain inputs (entropy) stand in"


def explanation_faithfulness(run_dir: str | Path, data: str = "test", *, methods: tuple[str, ...] | list[str] = METHODS,
                             max_examples: int = 200, seed: int = 0, options: dict | None = None,
                             random_draws: int = 5, top_k: int = 3, stability_examples: int = 50,
                             uncertainty_examples: int = 50, batch_size: int | None = None) -> dict:
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
    from caveat.evaluation.run import resolve_split
    from caveat.models.rundir import open_run

    run = open_run(run_dir)
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError("--explain-faithfulness is for text-classification runs so far; explain NER spans one at a "
                          "time with caveat explain RUN SENTENCE --span WORDS")
    methods = list(methods)
    for m in methods:
        EXPLAINERS.get(m)  # unknown names fail before any work
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ConfigError(f"max_examples must be a positive integer; got {max_examples!r}")
    opts = {m: {**DEFAULT_OPTIONS.get(m, {}), **(options or {}).get(m, {})} for m in methods}
    split = resolve_split(run, data)
    texts = [ex.text for ex in split.examples if ex.text.split()]
    if len(texts) > max_examples:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_examples, replace=False))
        texts = [texts[i] for i in pick]
    model = ExplainModel.from_run(run.path, batch_size=batch_size)

    rows: dict[str, list[dict]] = {m: [] for m in [*methods, "random"]}
    costs: dict[str, list[tuple[int, float]]] = {m: [] for m in methods}
    agreement: dict[str, list[dict]] = {f"{a}~{b}": [] for a, b in itertools.combinations(methods, 2)}
    stability: dict[str, list[dict]] = {m: [] for m in methods if m in STOCHASTIC}
    examples: dict[str, list[dict]] = {m: [] for m in methods}
    for i, text in enumerate(texts):
        explained = model.explained(text, "predicted")
        attributions = {}
        for m in methods:
            a = EXPLAINERS.get(m)(explained, seed=seed, **opts[m])
            attributions[m] = a.word_attributions[a.features]
            costs[m].append((a.evaluations, a.seconds))
            rows[m].append(faithfulness(explained.score, attributions[m]))
            if len(examples[m]) < SHOWN:
                examples[m].append(a.to_dict() | {"text": text})
            if m in stability and i < stability_examples:
                again = EXPLAINERS.get(m)(explained, seed=seed + 1, **opts[m])
                stability[m].append(rank_agreement(attributions[m], again.word_attributions[again.features], k=top_k))
        rows["random"].append(random_baseline(explained.score, explained.n_features, draws=random_draws, seed=seed + i))
        for a, b in itertools.combinations(methods, 2):
            agreement[f"{a}~{b}"].append(rank_agreement(attributions[a], attributions[b], k=top_k))
        if (i + 1) % 20 == 0:
            log.info("explained %d/%d texts", i + 1, len(texts))

    unsure, how = _abstained(model, run, texts)
    chosen = [texts[i] for i in np.flatnonzero(unsure)[:uncertainty_examples]]
    uncertainty = {"selected_by": how, "selected": int(unsure.sum()), "n": len(chosen), "k": top_k, "score": "entropy",
                   "methods": {}}
    for m in methods:
        drops = []
        for text in chosen:
            explained = model.explained(text, "uncertainty")
            a = EXPLAINERS.get(m)(explained, seed=seed, **opts[m])
            drops.append(top_k_drop(explained.score, a.word_attributions[a.features], k=top_k, seed=seed))
        uncertainty["methods"][m] = {
            "lower_than_random": _mean([d["lower_than_random"] for d in drops]),
            "top_drop": _mean([d["top"] for d in drops]), "random_drop": _mean([d["random"] for d in drops])}

    out = {"data": data, "n": len(texts), "seed": seed, "options": opts, "random_draws": random_draws,
           "target": "calibrated probability of the predicted label" if model.calibrated else "probability of the predicted label",
           "methods": {}, "agreement": {}, "stability": {}, "uncertainty": uncertainty, "examples": examples}
    for m in [*methods, "random"]:
        summary = summarise(rows[m])
        summary.pop("evaluations", None)  # the metric's own model calls, not the explanation's cost
        if m in costs:
            ev, sec = np.array([c[0] for c in costs[m]], float), np.array([c[1] for c in costs[m]], float)
            summary["evaluations"] = {"mean": float(ev.mean()), "se": float(ev.std(ddof=1) / np.sqrt(len(ev))) if len(ev) > 1 else 0.0}
            summary["seconds"] = {"mean": float(sec.mean()), "median": float(np.median(sec)),
                                  "se": float(sec.std(ddof=1) / np.sqrt(len(sec))) if len(sec) > 1 else 0.0}
        out["methods"][m] = summary
    for pair, values in agreement.items():
        out["agreement"][pair] = {k: _mean([v[k] for v in values]) for k in ("spearman", "kendall", "top_k_overlap")}
    for m, values in stability.items():
        out["stability"][m] = {"seeds": [seed, seed + 1], "n": len(values), **{k: _mean([v[k] for v in values])
                                                              for k in ("spearman", "kendall", "top_k_overlap")}}
    return out
