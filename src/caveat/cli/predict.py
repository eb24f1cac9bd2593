"""``caveat predict``: label (or entity spans) and probabilities for texts, a file, or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to predict; '-' or none reads stdin (one per line).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="A .jsonl file (field 'text') or one text per line.")] = None,
    top_k: Annotated[int, typer.Option(help="Probabilities of the k most likely labels (0: all).")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Predict; one JSON object per input (JSON lines when there are several)."""
    from caveat.data.readers import read_texts
    from caveat.inference import Predictor

    if file is not None:
        inputs = read_texts(file)
    elif texts and texts != ["-"]:
        inputs = list(texts)
    elif not sys.stdin.isatty():
        inputs = [line.rstrip("\r") for line in sys.stdin.read().split("\n") if line.strip()]
    else:
        raise ConfigError("nothing to predict: pass a text, --file FILE, or pipe texts on stdin")
    if top_k < 0:
        raise ConfigError(f"--top-k must be >= 0 (0 = all labels). Got {top_k}.")
    empty = [i + 1 for i, t in enumerate(inputs) if not t.strip()]
    if empty:
        raise ConfigError(f"input {empty[0]} is empty; give non-empty texts")
    from caveat.calibrate import Caveats
    from caveat.calibrate_spans import SpanCaveats
    from caveat.models.rundir import open_run
    from caveat.types import Task

    opened = open_run(run)
    predictor = Predictor.from_run(opened, batch_size=batch_size)
    if predictor.task is Task.TOKEN_CLASSIFICATION:
        preds = predictor.predict(inputs)
        rows = format_rows(preds, inputs, predictor.task, top_k)
        spans = SpanCaveats.from_run(opened)
        if spans is not None:  # calibrated: each span kept or flagged, with the reason
            spans.annotate(rows, preds)
    else:
        rows = format_predictions(predictor, inputs, top_k, caveats=Caveats.from_run(opened))
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, indent=None if len(rows) > 1 else 2) + "\n")


def format_predictions(predictor, inputs: list[str], top_k: int, caveats=None) -> list[dict]:
    """JSON-ready rows: ``{text, label, probability, probabilities}`` or ``{text, tokens, tags, spans}``;
    a calibrated run (``caveats``) adds calibrated probabilities, ``uncertainty``, ``prediction_set``,
    ``decision`` and ``reason``."""
    return format_rows(predictor.predict(inputs), inputs, predictor.task, top_k, caveats=caveats)


def format_rows(preds, inputs: list, task, top_k: int, caveats=None) -> list[dict]:
    """The rows of ``format_predictions`` from ``Predictions`` already computed for ``inputs`` (texts,
    or word lists for token tasks); shared by ``caveat predict`` and ``caveat serve``."""
    from caveat.models.tags import bio_spans
    from caveat.training.scoring import decode_tags
    from caveat.types import Task

    probs, labels = preds.probs[0], preds.labels
    rows = []
    if task is Task.TOKEN_CLASSIFICATION:
        for i, text in enumerate(inputs):
            words = text.split() if isinstance(text, str) else list(text)
            tags = decode_tags([preds.logits[0][i, : len(words)]], labels)[0]
            word_p = [float(probs[i, w, labels.index(t)]) for w, t in enumerate(tags)]
            spans = [{"text": " ".join(words[s:e]), "label": typ, "start": s, "end": e, "probability": min(word_p[s:e])}
                     for s, e, typ in bio_spans(tags)]
            rows.append({"text": text if isinstance(text, str) else " ".join(words), "tokens": words, "tags": tags,
                         "spans": spans})
        return rows
    k = len(labels) if top_k == 0 else min(top_k, len(labels))
    extra = caveats.apply(preds) if caveats is not None else [{}] * len(inputs)
    for i, text in enumerate(inputs):
        p = extra[i].pop("probs", probs[i])
        order = np.argsort(-p)[:k]
        rows.append({"text": text, "label": labels[order[0]], "probability": float(p[order[0]]),
                     "probabilities": {labels[j]: float(p[j]) for j in order}, **extra[i]})
    return rows
