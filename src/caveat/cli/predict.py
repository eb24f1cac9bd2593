"""``caveat predict``: label (or entity spans) and probabilities for texts, a file, or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    texts: Annotated[
        Optional[list[str]], typer.Argument(help="Texts to predict; '-' or none reads stdin (one per line).")
    ] = None,
    file: Annotated[
        Optional[Path], typer.Option("--file", "-f", help="A .jsonl file (field 'text') or one text per line.")
    ] = None,
    top_k: Annotated[int, typer.Option(help="Probabilities of the k most likely labels (0: all).")] = 5,
    method: Annotated[
        str,
        typer.Option(
            help="deterministic, or mc_dropout (adds the mean of --samples passes; the label and decision "
            "stay the calibrated deterministic ones: decided_by)."
        ),
    ] = "deterministic",
    samples: Annotated[int, typer.Option(help="mc_dropout: stochastic passes.")] = 10,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Predict; one JSON object per input (JSON lines when there are several): the rows of Model.predict and
    POST /v1/predict."""
    from caveat.data.readers import read_texts
    from caveat.inference import Predictor
    from caveat.rows import check_request, predict_rows

    if file is not None:
        inputs = read_texts(file)
    elif texts and texts != ["-"]:
        inputs = list(texts)
    elif not sys.stdin.isatty():
        inputs = [line.rstrip("\r") for line in sys.stdin.read().split("\n") if line.strip()]
    else:
        raise ConfigError("nothing to predict: pass a text, --file FILE, or pipe texts on stdin")
    if not inputs:  # checked before the model loads (seconds)
        raise ConfigError(
            "nothing to predict: stdin held no texts; pipe one text per line (echo 'a text' | caveat predict RUN), "
            "pass a text, or --file FILE"
        )
    check_request(method, samples, top_k)
    empty = [i + 1 for i, t in enumerate(inputs) if not t.strip()]
    if empty:
        raise ConfigError(f"input {empty[0]} is empty; give non-empty texts")
    predictor = Predictor.from_run(run, batch_size=batch_size)
    rows = predict_rows(predictor, inputs, top_k=top_k, method=method, samples=samples).rows
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, indent=None if len(rows) > 1 else 2) + "\n")
