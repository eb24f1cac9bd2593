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
                 mc_samples: int = 0, mc_top_layers: int | None = None, ensemble: bool = False, batch_size: int | None = None, write: bool = True) -> dict:
    """Metrics of a run on ``data`` (see docs/metrics.md for the keys); merged into ``metrics.json``.

    For text classification it adds calibration / selective-prediction figures, conformal and
    abstention figures when the run is calibrated, and OOD detection for each ``ood`` set; with
    ``mc_samples = K``, the same for MC dropout (naive, or only in the top ``mc_top_layers`` layers) under ``mc_dropout`` with its cost relative to one
    deterministic pass (``mc_dropout.cost_ratio``, both timed in this call); with ``ensemble``, the
    same for the run's deep-ensemble members under ``ensemble``.
    """
    from caveat.inference import Predictor
    from caveat.training.scoring import metrics_for

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if ood and run.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError("--ood is for text-classification runs")
    load = functools.cache(lambda: _load_data(run.config))  # the data files are read at most once
    split = resolve_split(run, data, load)
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
    else:
        from caveat.calibrate import Caveats
        from caveat.evaluation.uncertainty import sampled_metrics, uncertainty_metrics

        texts = [ex.text for ex in split.examples]
        ood_inputs = {name: ood_texts(run, name, load) for name in ood}
        start = time.perf_counter()
        preds = predictor.predict(texts)
        seconds = time.perf_counter() - start
        metrics = metrics_for(run.task, split, run.labels, logits=preds.logits[0])
        y = np.array([run.labels.index(ex.label) for ex in split.examples])
        ood_preds = {name: predictor.predict(t) for name, t in ood_inputs.items()}
        metrics.update(uncertainty_metrics(preds, y, Caveats.from_run(run), ood_preds))
        if mc_samples:
            start = time.perf_counter()
            mc = predictor.predict(texts, samples=mc_samples, top_layers=mc_top_layers)
            cost = (time.perf_counter() - start) / seconds
            mc_ood = {name: predictor.predict(t, samples=mc_samples, top_layers=mc_top_layers) for name, t in ood_inputs.items()}
            metrics["mc_dropout"] = {**sampled_metrics(mc, y, mc_ood), "top_layers": mc_top_layers, "cost_ratio": cost}
        if ensemble:
            from caveat.api import ensemble_predict

            members = predictor.ensemble(run)
            start = time.perf_counter()
            ens = ensemble_predict(members, texts)
            cost = (time.perf_counter() - start) / seconds
            ens_ood = {name: ensemble_predict(members, t) for name, t in ood_inputs.items()}
            metrics["ensemble"] = {**sampled_metrics(ens, y, ens_ood), "members": len(members), "cost_ratio": cost}
    result = {"data": data, "source": split.source, "task": run.task.value, **metrics}
    if write:
        path = run.path / METRICS_FILE
        existing = read_json(path) if path.is_file() else {}
        existing[data] = result
        write_json_atomic(path, existing)
    return result
