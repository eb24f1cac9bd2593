"""``caveat predict``: label (or entity spans) and probabilities for texts, a file, or stdin."""

from __future__ import annotations

import functools
import itertools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.errors import ConfigError, DataError


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    texts: Annotated[
        Optional[list[str]], typer.Argument(help="Texts to predict; '-' or none reads stdin (one per line).")
    ] = None,
    file: Annotated[
        Optional[Path],
        typer.Option(
            "--file",
            "-f",
            help="A .jsonl (field 'text', or 'tokens' for NER), .csv (column 'text') or .parquet file, or one text "
            "per line; read and scored --chunk-size inputs at a time (bounded memory).",
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="With --file: write the rows to this .jsonl file or .parquet directory instead of stdout. Run "
            "the same command again after a crash and it resumes after the rows already written.",
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="With --file: inputs read, scored and written at a time.")] = 1000,
    top_k: Annotated[int, typer.Option(help="Probabilities of the k most likely labels (0: all).")] = 5,
    method: Annotated[
        str,
        typer.Option(
            help="deterministic, or mc_dropout (adds the mean of --samples passes; the label and decision "
            "stay the calibrated deterministic ones: decided_by)."
        ),
    ] = "deterministic",
    samples: Annotated[int, typer.Option(help="mc_dropout: stochastic passes.")] = 10,
    seed: Annotated[
        int,
        typer.Option(
            help="mc_dropout: the seed; with --file input i is sampled alone from (seed, i), so chunks agree."
        ),
    ] = 0,
    certify: Annotated[
        bool,
        typer.Option(
            "--certify",
            help="Text classification: add 'certified', SAFER's certificate that the smoothed prediction survives "
            "swapping up to 20% of the words for PPDB synonyms (111 model passes per text; with --file and --ray "
            "too).",
        ),
    ] = False,
    lexicons: Annotated[
        Optional[Path],
        typer.Option(
            help="With --certify: folder holding ppdb_synonyms.txt. Default $CAVEAT_LEXICONS, else "
            "$CAVEAT_DATA/lexicons."
        ),
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="With --file and --out: score on a Ray cluster through Ray Data, one model per actor (pip install "
            "'caveat\\[ray]'). The same rows, in input order; not resumable, so --out must not exist yet.",
        ),
    ] = False,
    ray_actors: Annotated[int, typer.Option("--ray-actors", help="With --ray: actors, each with its model.")] = 2,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address", help="With --ray: the cluster to join (default: $RAY_ADDRESS, else a local Ray)."
        ),
    ] = None,
) -> None:
    """Predict; one JSON object per input (JSON lines when there are several): the rows of Model.predict and
    POST /v1/predict."""
    from caveat.inference import Predictor
    from caveat.rows import check_request, predict_rows

    if lexicons is not None and not certify:
        raise ConfigError("--lexicons is read by --certify only: add --certify, or drop --lexicons")
    scoring = {"top_k": top_k, "method": method, "samples": samples, "seed": seed}  # the rows' options, every path
    enrich = _certifier(run, lexicons) if certify else None  # refusals come before the model loads
    if ray:
        _predict_on_ray(run, file, out, ray_actors, ray_address, scoring | {"enrich": enrich}, batch_size, chunk_size)
        return
    if file is not None:
        _predict_file(run, file, out, scoring | {"enrich": enrich}, batch_size, chunk_size)
        return
    if out is not None:
        raise ConfigError("--out is for --file: score a file (--file FILE --out OUT), or drop --out to print rows")
    inputs = _read_inputs(texts)
    check_request(method, samples, top_k)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    rows = predict_rows(predictor, inputs, **scoring).rows
    if enrich is not None:
        enrich(predictor, rows)
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, indent=None if len(rows) > 1 else 2) + "\n")


def _certifier(run: Path, lexicons: Path | None):
    """``--certify``: SAFER's ``add_certified`` with the lexicon's synonym sets, as a function of (predictor, rows)
    for every path (texts, ``--file``, ``--ray``). Each text is seeded from itself, so a file's rows do not depend
    on their chunk and a resumed output matches a whole one. A NER run, or a folder without synonyms, is refused
    here, before the model loads."""
    from caveat.models.rundir import open_run
    from caveat.robustness.certify import add_certified
    from caveat.robustness.certify_run import certify_sets
    from caveat.rows import check_certify

    check_certify(True, open_run(run).task)
    return functools.partial(add_certified, sets=certify_sets(lexicons))


def _read_inputs(texts: list[str] | None) -> list[str]:
    """The texts given as arguments, else one per line of stdin; refused before the model loads (seconds) when
    there are none or one is empty."""
    if texts and texts != ["-"]:
        inputs = list(texts)
    elif not sys.stdin.isatty():
        inputs = [line.rstrip("\r") for line in sys.stdin.read().split("\n") if line.strip()]
    else:
        raise ConfigError("nothing to predict: pass a text, --file FILE, or pipe texts on stdin")
    if not inputs:
        raise ConfigError(
            "nothing to predict: stdin held no texts; pipe one text per line (echo 'a text' | caveat predict RUN), "
            "pass a text, or --file FILE"
        )
    empty = [i + 1 for i, t in enumerate(inputs) if not t.strip()]
    if empty:
        raise ConfigError(f"input {empty[0]} is empty; give non-empty texts")
    return inputs


def _predict_file(
    run: Path, file: Path, out: Path | None, scoring: dict, batch_size: int | None, chunk_size: int
) -> None:
    """Stream ``file`` through the model a chunk at a time into ``out`` (stdout when None), resuming ``out``;
    ``scoring``: the rows' ``top_k``, ``method``, ``samples``, ``seed`` and ``enrich`` (``--certify``)."""
    from caveat.batchscore import chunked, count_inputs, iter_inputs, open_sink, score_stream
    from caveat.inference import Predictor
    from caveat.rows import check_request

    check_request(scoring["method"], scoring["samples"], scoring["top_k"])
    chunked((), chunk_size)  # a bad --chunk-size fails here, before the model loads (seconds)
    inputs = iter_inputs(file)
    first = next(inputs, None)  # an empty file fails before the model loads (seconds)
    if first is None:
        raise DataError(f"{file}: no texts. Fix: write one text per line (or one JSON object with 'text')")
    sink = open_sink(out)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    score_stream(
        predictor, itertools.chain([first], inputs), sink, chunk_size=chunk_size, total=count_inputs(file), **scoring
    )


def _predict_on_ray(
    run: Path,
    file: Path | None,
    out: Path | None,
    actors: int,
    address: str | None,
    scoring: dict,
    batch_size: int | None,
    chunk_size: int,
) -> None:
    """``--file`` scored on Ray into ``--out`` (caveat.raybatch): both are needed, the rows go to a file."""
    from caveat.raybatch import score_on_ray

    missing = " and ".join(flag for flag, value in (("--file FILE", file), ("--out OUT", out)) if value is None)
    if missing:
        raise ConfigError(
            f"--ray scores a file into an output: add {missing} (e.g. --file big.jsonl --out preds.parquet), "
            "or drop --ray"
        )
    score_on_ray(
        run, file, out, actors=actors, address=address, chunk_size=chunk_size, batch_size=batch_size, **scoring
    )
