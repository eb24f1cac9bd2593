"""``caveat explain``: word attributions of one input (JSON, and optionally an HTML snippet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_command)


def explain_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    text: Annotated[str, typer.Argument(help="The text to explain (NER: the sentence, words separated by spaces).")],
    method: Annotated[str, typer.Option(help="ig (integrated gradients), shap, lime or occlusion.")] = "ig",
    target: Annotated[
        str,
        typer.Option(
            help="Text runs: predicted, a label name, uncertainty (ig: least_confidence; the others: entropy), "
            "entropy, least_confidence or mutual_information."
        ),
    ] = "predicted",
    span: Annotated[
        Optional[str], typer.Option(help="NER runs: the span to explain, its words as in the sentence, e.g. 'Paris'.")
    ] = None,
    label: Annotated[
        Optional[str], typer.Option(help="NER runs: explain the span as this entity type (default: the predicted one).")
    ] = None,
    steps: Annotated[int, typer.Option(help="ig: integration steps, all in one batched pass.")] = 32,
    max_evals: Annotated[int, typer.Option(help="shap: most model evaluations (shap's default is 500).")] = 500,
    samples: Annotated[int, typer.Option(help="lime: perturbed inputs (lime's own default is 5000).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of lime's and shap's sampling.")] = 0,
    html: Annotated[Optional[Path], typer.Option(help="Also write a coloured HTML snippet to this file.")] = None,
) -> None:
    """Which words drive a prediction, its uncertainty, or a span's label; prints the attribution as JSON
    (with a one-line summary of the top words, also on stderr)."""
    from caveat.explain import ExplainModel, explain
    from caveat.explain.render import to_html
    from caveat.io import write_text_atomic

    options = {"ig": {"steps": steps}, "shap": {"max_evals": max_evals}, "lime": {"samples": samples}}.get(method, {})
    a = explain(
        ExplainModel.from_run(run), text, method=method, target=target, span=span, label=label, seed=seed, **options
    )
    if html is not None:
        write_text_atomic(html, f"<!doctype html><meta charset=utf-8><title>caveat explain</title>\n{to_html(a)}\n")
    summary = a.summary()
    typer.echo(summary, err=True)  # the top words in words, where a person reads; stdout stays one JSON object
    emit({"run": str(run), "text": text, **a.to_dict(), "summary": summary})
