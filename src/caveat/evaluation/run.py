"""Evaluate a run directory on a named split or on a file; results merged into ``metrics.json``."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from caveat.calibration import SpanCalibration
from caveat.data.load import load_data as _load_data
from caveat.data.resolve import ood_texts, resolve_split
from caveat.errors import ConfigError
from caveat.evaluation.calibration import aurc
from caveat.evaluation.methods import Context, method_metrics, parse_methods
from caveat.evaluation.metrics import metrics_for, relation_decisions
from caveat.evaluation.uncertainty import sampled_metrics, uncertainty_metrics
from caveat.explain.evaluate import explanation_faithfulness
from caveat.inference import Predictor
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import Run, open_run
from caveat.models.tags import decode_tags
from caveat.progress import subject
from caveat.robustness.shift import evaluate_shifts, read_shifts
from caveat.types import Predictions, Split, Task
from caveat.uncertainty.tokens import binary_ece, span_report

METRICS_FILE = "metrics.json"


def evaluate_run(
    run_dir: str | Path | Run,
    data: str = "test",
    *,
    ood: list[str] | tuple[str, ...] = (),
    methods: str | list[str] | None = None,
    mc_samples: int = 0,
    mc_top_layers: int | None = None,
    ensemble: bool = False,
    batch_size: int | None = None,
    write: bool = True,
    shift: list[str] | tuple[str, ...] | dict[str, str] = (),
    explain: dict | None = None,
    adversarial: list[str] | tuple[str, ...] | dict[str, str] = (),
) -> dict:
    """Metrics of a run on ``data`` (see docs/metrics.md for the keys); merged into ``metrics.json``.

    For text classification it adds calibration / selective-prediction figures, conformal and
    abstention figures when the run is calibrated, and OOD detection for each ``ood`` set. Under
    ``methods.<name>`` each uncertainty method (``methods``: names or "a,b"; default: the ones that
    need no extra pass, see ``evaluation/methods.py``) gets the same figures and its cost relative to
    one deterministic pass, both timed in this call. ``mc_samples = K`` adds MC dropout (naive, or only
    in the top ``mc_top_layers`` layers) and ``ensemble`` the run's deep-ensemble members, each also
    with every sampled score under ``mc_dropout`` / ``ensemble``. ``shift`` (``["cr=FILE", ...]`` or
    ``{name: file}``, labelled files) adds ``shift.<name>`` per set (``robustness/shift.py``); ``adversarial``
    (the same form: human-made adversarial sets) adds ``adversarial.<name>`` with the same figures, among them the
    calibrated policy's share answered and error on what it answers (``abstention.coverage``, ``abstention.risk``).
    ``explain`` (keyword arguments of ``explain.evaluate.explanation_faithfulness``, e.g.
    ``{"methods": ["ig", "occlusion"], "max_examples": 200}``) adds ``explanations``.
    """

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if ood and run.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError("{ood} is for text-classification runs", fields=("ood",))
    load = functools.cache(lambda: _load_data(run.config))  # the data files are read at most once
    split = resolve_split(run, data, load)

    shifted = read_shifts(run, shift)  # read and label-checked before any model pass
    adversarial_sets = read_shifts(run, adversarial, field="adversarial")
    if explain is not None and run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            "{explain} (faithfulness of explanations) is for text-classification runs so far; explain "
            "NER spans one at a time (caveat explain RUN SENTENCE --span WORDS)",
            fields=("explain",),
        )
    predictor = Predictor.from_run(run, batch_size=batch_size)
    with subject(data):  # what its passes predict, for the progress lines
        if run.task is Task.TOKEN_CLASSIFICATION:
            metrics = _token_metrics(run, predictor, split)
        else:
            metrics = _text_metrics(
                run,
                predictor,
                split,
                {name: ood_texts(run, name, load) for name in ood},
                methods=methods,
                mc_samples=mc_samples,
                mc_top_layers=mc_top_layers,
                ensemble=ensemble,
            )
            metrics.update(_shifted_metrics(run, predictor, split, shifted, adversarial_sets))
            if explain is not None:
                metrics["explanations"] = explanation_faithfulness(run.path, data, batch_size=batch_size, **explain)
    result = {"data": data, "source": split.source, "task": run.task.value, **metrics}
    if write:
        path = run.path / METRICS_FILE
        existing = read_json(path) if path.is_file() else {}
        existing[data] = result
        write_json_atomic(path, existing)
    return result


def _token_metrics(run: Run, predictor: Predictor, split: Split) -> dict:
    """An NER run's figures on ``split``: word-level metrics, span confidence and, once calibrated, its caveats."""
    preds = predictor.predict([ex.tokens for ex in split.examples])
    logits, probs = preds.logits[0], preds.probs[0]  # (N, T, C)
    words = [logits[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
    metrics = metrics_for(run.task, split, run.labels, word_logits=words)
    metrics["spans"] = span_report(
        [probs[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)],
        decode_tags(words, run.labels),
        [ex.tags for ex in split.examples],
        run.labels,
    )
    metrics.update(_span_caveats(predictor.calibration, preds, split))
    return metrics


def _shifted_metrics(
    run: Run, predictor: Predictor, split: Split, shifted: dict[str, Split], adversarial_sets: dict[str, Split]
) -> dict:
    """``shift`` and ``adversarial`` figures, each set against ``split`` predicted once; {} when there are none."""
    if not (shifted or adversarial_sets):
        return {}
    base = predictor.predict([ex.text for ex in split.examples])  # the in-domain side, once
    out = {}
    if shifted:
        out["shift"] = evaluate_shifts(run, predictor, split, shifted, base=base)
    if adversarial_sets:
        out["adversarial"] = evaluate_shifts(run, predictor, split, adversarial_sets, base=base, what="adversarial set")
    return out


def _text_metrics(
    run: Run,
    predictor,
    split: Split,
    ood_inputs: dict[str, list[str]],
    *,
    methods,
    mc_samples: int,
    mc_top_layers: int | None,
    ensemble: bool,
) -> dict:

    caveats = predictor.calibration
    names = parse_methods(methods, calibrated=caveats is not None)
    names += [n for n, on in (("mc_dropout", mc_samples), ("ensemble", ensemble)) if on and n not in names]
    texts = [ex.text for ex in split.examples]
    start = time.perf_counter()
    preds = predictor.predict(texts)
    seconds = time.perf_counter() - start
    metrics = metrics_for(run.task, split, run.labels, logits=preds.logits[0])
    y = np.array([run.labels.index(ex.label) for ex in split.examples])
    ood_preds = _predict_ood(predictor, ood_inputs)
    metrics.update(uncertainty_metrics(preds, y, caveats, ood_preds))
    if caveats is not None and run.task is Task.RELATION_CLASSIFICATION:  # "no relation" apart from real errors
        probs, _, decision = caveats.decide(preds)
        metrics["relation_decisions"] = relation_decisions(y, probs.argmax(-1), decision.answered, run.labels)
    if caveats is not None and ood_inputs:  # the calibrated default's score, at the top level
        metrics["ood_auroc"] = {k: v[caveats.score]["auroc"] for k, v in metrics["ood"].items()}
        metrics["fpr95"] = {k: v[caveats.score]["fpr95"] for k, v in metrics["ood"].items()}
    ctx = Context(
        run=run,
        predictor=predictor,
        texts=texts,
        ood_texts=ood_inputs,
        caveats=caveats,
        base=preds,
        base_ood=ood_preds,
        base_seconds=seconds,
        mc_samples=mc_samples or 10,
        mc_top_layers=mc_top_layers,
    )
    metrics["methods"] = method_metrics(ctx, y, names)
    for name, extra in (("mc_dropout", {"top_layers": mc_top_layers}), ("ensemble", {})):
        if name in ctx.cache:
            sampled, sampled_ood = ctx.cache[name]
            if name == "ensemble":
                extra = {"members": int(sampled.probs.shape[0])}
            metrics[name] = {
                **_mean_task_figures(run, split, sampled),
                **sampled_metrics(sampled, y, sampled_ood),
                **extra,
                "cost_ratio": metrics["methods"][name]["cost_ratio"],
            }
    return metrics


MEAN_TASK_FIGURES = ("accuracy", "macro_f1", "relation_macro_f1")


def _mean_task_figures(run, split: Split, sampled: Predictions) -> dict:
    """The task's headline figures of the samples' mean prediction (an ensemble's own accuracy and, for relation
    runs, its official macro-F1; the top-level figures are member 0's, the run directory itself)."""
    mean = sampled.probs.mean(0)  # (N, C)
    figures = metrics_for(run.task, split, run.labels, logits=np.log(np.clip(mean, 1e-12, None)))
    return {k: figures[k] for k in MEAN_TASK_FIGURES if k in figures}


def _predict_ood(predictor, ood_inputs: dict[str, list[str]]) -> dict[str, Predictions]:
    """One deterministic pass per out-of-scope set, each named for the progress lines."""
    out = {}
    for name, texts in ood_inputs.items():
        with subject(f"out-of-scope {name}"):
            out[name] = predictor.predict(texts)
    return out


def _span_caveats(caveats: SpanCalibration | None, preds: Predictions, split: Split) -> dict:
    """A calibrated NER run: span ECE after the word temperature, and the kept spans' error and share."""

    if caveats is None:
        return {}
    logits = [preds.logits[0][i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
    _, conf, right = caveats.span_scores(logits, gold=[ex.tags for ex in split.examples])
    if len(conf) == 0:
        return {"calibrated": {"temperature": caveats.temperature, "n_spans": 0}}
    kept = caveats.risk.decide(1.0 - conf)
    return {
        "calibrated": {
            "temperature": caveats.temperature,
            "aggregate": caveats.aggregate,
            "n_spans": int(len(conf)),
            "span_ece": binary_ece(conf, right),
            "span_aurc": aurc(1.0 - conf, ~right),
        },
        "abstention": {
            "score": caveats.risk.score,
            "risk": float((~right[kept]).mean()) if kept.any() else None,
            "coverage": float(kept.mean()),
            "guarantee": caveats.risk.guarantee,
        },
    }
