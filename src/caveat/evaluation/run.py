"""Evaluate a run directory on a named split or on a file; results merged into ``metrics.json``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError, RunDirError
from caveat.data.load import load_data as _load_data
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import Run, open_run
from caveat.types import Split, Task

METRICS_FILE = "metrics.json"


def resolve_split(run: Run, data: str, load: Callable[[], object] | None = None) -> Split:
    """``data`` is a split name (train/validation/calibration/test, as the run was trained) or a file."""
    from caveat.data.labels import LabelMap, check_labels
    from caveat.data.load import SPLIT_NAMES, find_split, load_data, read_file

    if Path(data.partition("#")[0]).expanduser().is_file():
        split = read_file(data, run.config.data.model_copy(update={"root": None}), run.task, name=Path(data).name)
    elif data in SPLIT_NAMES or data in run.config.data.ood:
        if data in run.config.data.ood:
            raise ConfigError(f"--data {data}: an out-of-scope set has no labels of this model to score; choose one of {', '.join(SPLIT_NAMES)} or a labelled file")
        splits = load() if load is not None else load_data(run.config)
        split = find_split(splits, data)
        if split is None:
            raise ConfigError(f"--data {data}: this run has no {data} split (set data.{data} when training, or pass a file)")
        from caveat.data.fingerprint import fingerprint

        if fingerprint(splits) != run.info.get("data", {}).get("fingerprint"):
            raise RunDirError(f"the data of {run.path} changed since training (fingerprint differs); pass the file to --data instead of the split name")
    else:
        raise ConfigError(f"--data {data!r} is neither a file nor a split name; use one of {', '.join(SPLIT_NAMES)} or a path")
    check_labels(split, LabelMap(run.labels), run.task)
    return split


def ood_texts(run: Run, spec: str, load: Callable[[], object] | None = None) -> list[str]:
    """Texts of an out-of-scope set: a name from the run's ``data.ood``, or a file (labels ignored).
    ``load`` returns the run's splits (pass a cached one to read the data once)."""
    from caveat.data.load import load_data
    from caveat.data.readers import read_texts

    if spec in run.config.data.ood:
        splits = load() if load is not None else load_data(run.config)
        return [ex.text for ex in splits.extra[spec].examples]
    if Path(spec.partition("#")[0]).expanduser().is_file():
        if "#" in spec or spec.endswith((".json", ".csv", ".tsv")):
            from caveat.data.load import read_file

            split = read_file(spec, run.config.data.model_copy(update={"root": None}), run.task, name="ood", labelled=False)
            return [ex.text for ex in split.examples]
        return read_texts(spec)
    names = ", ".join(run.config.data.ood) or "none configured"
    raise ConfigError(f"--ood {spec!r} is neither an out-of-scope set of this run ({names}) nor a file of texts")


def evaluate_run(run_dir: str | Path | Run, data: str = "test", *, ood: list[str] | tuple[str, ...] = (),
                 methods: str | list[str] | None = None, mc_samples: int = 0, mc_top_layers: int | None = None,
                 ensemble: bool = False, batch_size: int | None = None, write: bool = True,
                 shift: list[str] | tuple[str, ...] | dict[str, str] = (), explain: dict | None = None) -> dict:
    """Metrics of a run on ``data`` (see docs/metrics.md for the keys); merged into ``metrics.json``.

    For text classification it adds calibration / selective-prediction figures, conformal and
    abstention figures when the run is calibrated, and OOD detection for each ``ood`` set. Under
    ``methods.<name>`` each uncertainty method (``methods``: names or "a,b"; default: the ones that
    need no extra pass, see ``evaluation/methods.py``) gets the same figures and its cost relative to
    one deterministic pass, both timed in this call. ``mc_samples = K`` adds MC dropout (naive, or only
    in the top ``mc_top_layers`` layers) and ``ensemble`` the run's deep-ensemble members, each also
    with every sampled score under ``mc_dropout`` / ``ensemble``. ``shift`` (``["cr=FILE", ...]`` or
    ``{name: file}``, labelled files) adds ``shift.<name>`` per set (``robustness/shift.py``).
    ``explain`` (keyword arguments of ``explain.evaluate.explanation_faithfulness``, e.g.
    ``{"methods": ["ig", "occlusion"], "max_examples": 200}``) adds ``explanations``.
    """
    from caveat.inference import Predictor
    from caveat.training.scoring import metrics_for

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if ood and run.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError("--ood is for text-classification runs")
    load = functools.cache(lambda: _load_data(run.config))  # the data files are read at most once
    split = resolve_split(run, data, load)
    from caveat.robustness.shift import evaluate_shifts, read_shifts

    shifted = read_shifts(run, shift)  # read and label-checked before any model pass
    if explain is not None and run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError("--explain-faithfulness is for text-classification runs so far; explain NER spans one at a "
                          "time with caveat explain RUN SENTENCE --span WORDS")
    predictor = Predictor.from_run(run, batch_size=batch_size)
    if run.task is Task.TOKEN_CLASSIFICATION:
        preds = predictor.predict([ex.tokens for ex in split.examples])
        logits = preds.logits[0]
        words = [logits[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
        metrics = metrics_for(run.task, split, run.labels, word_logits=words)
        from caveat.training.scoring import decode_tags
        from caveat.uncertainty.tokens import span_report

        probs = preds.probs[0]
        metrics["spans"] = span_report([probs[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)],
                                       decode_tags(words, run.labels), [ex.tags for ex in split.examples], run.labels)
        metrics.update(_span_caveats(run, preds, split))
    else:
        metrics = _text_metrics(run, predictor, split, {name: ood_texts(run, name, load) for name in ood},
                                methods=methods, mc_samples=mc_samples, mc_top_layers=mc_top_layers, ensemble=ensemble)
        if shifted:
            metrics["shift"] = evaluate_shifts(run, predictor, split, shifted)
        if explain is not None:
            from caveat.explain.evaluate import explanation_faithfulness

            metrics["explanations"] = explanation_faithfulness(run.path, data, batch_size=batch_size, **explain)
    result = {"data": data, "source": split.source, "task": run.task.value, **metrics}
    if write:
        path = run.path / METRICS_FILE
        existing = read_json(path) if path.is_file() else {}
        existing[data] = result
        write_json_atomic(path, existing)
    return result


def _text_metrics(run: Run, predictor, split: Split, ood_inputs: dict[str, list[str]], *, methods, mc_samples: int,
                  mc_top_layers: int | None, ensemble: bool) -> dict:
    from caveat.calibrate import Caveats
    from caveat.evaluation.methods import Context, method_metrics, parse_methods
    from caveat.evaluation.uncertainty import sampled_metrics, uncertainty_metrics
    from caveat.training.scoring import metrics_for

    caveats = Caveats.from_run(run)
    names = parse_methods(methods, calibrated=caveats is not None)
    names += [n for n, on in (("mc_dropout", mc_samples), ("ensemble", ensemble)) if on and n not in names]
    texts = [ex.text for ex in split.examples]
    start = time.perf_counter()
    preds = predictor.predict(texts)
    seconds = time.perf_counter() - start
    metrics = metrics_for(run.task, split, run.labels, logits=preds.logits[0])
    y = np.array([run.labels.index(ex.label) for ex in split.examples])
    ood_preds = {name: predictor.predict(t) for name, t in ood_inputs.items()}
    metrics.update(uncertainty_metrics(preds, y, caveats, ood_preds))
    if caveats is not None and ood_inputs:  # the calibrated default's score, at the top level
        metrics["ood_auroc"] = {k: v[caveats.score]["auroc"] for k, v in metrics["ood"].items()}
        metrics["fpr95"] = {k: v[caveats.score]["fpr95"] for k, v in metrics["ood"].items()}
    ctx = Context(run=run, predictor=predictor, texts=texts, ood_texts=ood_inputs, caveats=caveats, base=preds,
                  base_ood=ood_preds, base_seconds=seconds, mc_samples=mc_samples or 10, mc_top_layers=mc_top_layers)
    metrics["methods"] = method_metrics(ctx, y, names)
    for name, extra in (("mc_dropout", {"top_layers": mc_top_layers}), ("ensemble", {})):
        if name in ctx.cache:
            sampled, sampled_ood = ctx.cache[name]
            if name == "ensemble":
                extra = {"members": int(sampled.probs.shape[0])}
            metrics[name] = {**sampled_metrics(sampled, y, sampled_ood), **extra,
                             "cost_ratio": metrics["methods"][name]["cost_ratio"]}
    return metrics


def _span_caveats(run: Run, preds, split: Split) -> dict:
    """A calibrated NER run: span ECE after the word temperature, and the kept spans' error and share."""
    from caveat.calibrate_spans import SpanCaveats, span_scores
    from caveat.evaluation.calibration import aurc
    from caveat.uncertainty.tokens import binary_ece

    caveats = SpanCaveats.from_run(run)
    if caveats is None:
        return {}
    logits = [preds.logits[0][i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
    _, conf, right = span_scores(logits, caveats.temperature, run.labels, caveats.aggregate, gold=[ex.tags for ex in split.examples])
    if len(conf) == 0:
        return {"calibrated": {"temperature": caveats.temperature, "n_spans": 0}}
    kept = caveats.risk.decide(1.0 - conf)
    return {
        "calibrated": {"temperature": caveats.temperature, "aggregate": caveats.aggregate, "n_spans": int(len(conf)),
                       "span_ece": binary_ece(conf, right), "span_aurc": aurc(1.0 - conf, ~right)},
        "abstention": {"score": caveats.risk.score, "risk": float((~right[kept]).mean()) if kept.any() else None,
                       "coverage": float(kept.mean()), "guarantee": caveats.risk.guarantee},
    }
