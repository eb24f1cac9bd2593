"""``caveat certify``: SAFER's certified robustness to word substitutions (JSON or a table; merged into
metrics.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit, print_tables, table_console


def register(app: typer.Typer) -> None:
    app.command("certify")(certify_command)


def certify_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train (text classification).")],
    data: Annotated[
        str, typer.Option(help="Split name (train, validation, calibration, test) or a labelled file.")
    ] = "test",
    max_examples: Annotated[int, typer.Option(help="Certify the first N examples of the data.")] = 300,
    samples: Annotated[
        int, typer.Option(help="Random draws per example that bound the top class's probability (model passes).")
    ] = 200,
    selection: Annotated[
        int, typer.Option(help="Further draws per example that choose the top class (0: the clean prediction).")
    ] = 20,
    delta: Annotated[
        float, typer.Option(help="Probability that a certificate is wrong, per example, in (0, 1).")
    ] = 0.05,
    budget: Annotated[
        float, typer.Option(help="Largest fraction of a text's words an attacker swaps, in [0, 1].")
    ] = 0.2,
    max_changed: Annotated[
        Optional[int], typer.Option(help="Largest number of words an attacker swaps (instead of --budget).")
    ] = None,
    set_size: Annotated[
        int, typer.Option(help="Largest random perturbation set of a word (SAFER's K): the smoothing's draws.")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random draws.")] = 0,
    lexicons: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Folder holding ppdb_synonyms.txt (the substitutes) and the antonym lexicons (left out of them). "
                "Default $CAVEAT_LEXICONS, else $CAVEAT_DATA/lexicons."
            )
        ),
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
    format: Annotated[str, typer.Option("--format", help="json or table.")] = "json",
) -> None:
    """Certify a run against word substitutions by randomized smoothing (SAFER); also merged into RUN/metrics.json
    under certify.<data>. Keys: docs/attacks.md."""
    from caveat.errors import ConfigError
    from caveat.robustness.certify_run import certify_run

    if format not in ("json", "table"):
        raise ConfigError(f"--format must be json or table. Got {format!r}.")
    result = certify_run(
        run,
        data,
        max_examples=max_examples,
        samples=samples,
        selection=selection,
        delta=delta,
        budget=budget,
        max_changed=max_changed,
        set_size=set_size,
        seed=seed,
        lexicons=lexicons,
        batch_size=batch_size,
    )
    if format == "json":
        emit(result)
    else:
        print_table(result)


ROWS = {
    "clean_accuracy": "clean accuracy (the model)",
    "smoothed_accuracy": "accuracy of the smoothed model",
    "certified_accuracy": "certified accuracy (right and certified)",
    "certified_rate": "certified (right or not)",
    "mean_p_a_lower": "mean lower bound of p_A",
    "mean_tv_bound": "mean bound on the shift Δ",
    "mean_substitutable": "words with substitutes, per text",
    "mean_changed": "words an attacker swaps, per text",
    "queries": "texts scored",
    "examples_per_s": "examples per second",
}


def _cell(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def print_table(result: dict) -> None:
    """One row per figure, under a line saying what was certified and how."""
    from rich.table import Table

    console = table_console()
    budget = f"{result['max_changed']} words" if result["max_changed"] is not None else f"{result['budget']:g} of words"
    heading = (
        f"certify on {result['data']}: {result['n']} examples, {result['samples']} draws each "
        f"(+{result['selection']} to choose), delta {result['delta']:g}\n"
        f"budget {budget}; sets {result['sets']['source']} (K={result['sets']['set_size']})"
    )
    table = Table()
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, label in ROWS.items():
        table.add_row(label, _cell(result.get(key)))
    print_tables(console, heading, table)
