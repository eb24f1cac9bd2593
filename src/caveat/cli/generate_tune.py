"""``caveat generate-tune``: the sampling temperature and meaning threshold of a sample-based estimator, chosen on
half the labelled questions and checked against the defaults on the other half."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caveat.cli.common import emit
from caveat.cli.generate import (
    Cache,
    Data,
    DataSeed,
    GgufFile,
    Lm,
    MaxExamples,
    MaxNew,
    Rule,
    Samples,
    Seed,
    Template,
    TopK,
    TopP,
    _cache,
    _sampling,
)

Grid = Annotated[str, typer.Option(help="Comma-separated values to try (the default is always added).")]


def register(app: typer.Typer) -> None:
    app.command("generate-tune")(generate_tune_command)


def _floats(text: str, name: str) -> list[float]:
    from caveat.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers, e.g. 0.3,0.5,1.0; got {text!r}") from None


def generate_tune_command(
    data: Data,
    estimator: Annotated[
        str, typer.Option(help="A sample-based estimator: semantic_entropy, eigv, lexical_similarity, ...")
    ] = "semantic_entropy",
    temperatures: Grid = "0.3,0.5,0.7,1.0",
    thresholds: Annotated[
        str,
        typer.Option(help="Meaning thresholds to try (cosine similarity; used by estimators on meaning clusters)."),
    ] = "0.8,0.85,0.9,0.95",
    max_examples: MaxExamples = None,
    data_seed: DataSeed = 0,
    lm: Lm = "default",
    gguf_file: GgufFile = None,
    samples: Samples = 8,
    max_new_tokens: MaxNew = 32,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    template: Template = None,
    rule: Rule = "contains",
    cache: Cache = None,
    out: Annotated[Path | None, typer.Option(help="Also write the result here (JSON).")] = None,
) -> None:
    """Choose the sampling temperature and meaning threshold on half the questions; report the choice against the
    defaults (0.5, 0.9) on the other half. Use the result with --temperature/--meaning-threshold."""
    from caveat.generate.data import read_questions
    from caveat.generate.lm import load_lm
    from caveat.generate.tune import tune_sampling
    from caveat.io import write_json_atomic

    grids = {"temperatures": _floats(temperatures, "--temperatures"), "thresholds": _floats(thresholds, "--thresholds")}
    questions = read_questions(data, limit=max_examples, seed=data_seed if max_examples else None)
    model = load_lm(lm, gguf_file=gguf_file)
    result = tune_sampling(
        questions,
        model,
        estimator=estimator,
        rule=rule,
        **grids,
        sampling=_sampling(samples, max_new_tokens, 0.5, top_k, top_p, seed),
        cache=_cache(cache),
        template=template,
        seed=data_seed,
    )
    result = {"data": str(data), **result}
    if out is not None:
        write_json_atomic(out, result)
    emit(result)
