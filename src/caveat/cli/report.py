"""``caveat report``: a self-contained HTML page about a run on one split (and its data as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    data: Annotated[
        Optional[str],
        typer.Option(
            help="Split name (train, validation, calibration, test) or a labelled file; default: test, or "
            "validation when the run has no test split."
        ),
    ] = None,
    ood: Annotated[
        list[str], typer.Option(help="Out-of-scope set: a data.ood name of the run or a file of texts (repeatable).")
    ] = [],
    out: Annotated[
        Optional[Path], typer.Option(help="HTML file to write (default RUN/report.html); the JSON goes next to it.")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows in the per-example tables.")] = 10,
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Write RUN/report.html (images embedded, nothing external) and RUN/report.json; print the path."""
    from caveat.report import build_report, write_report
    from caveat.training.run import is_main_process

    built = build_report(run, data, ood=ood, top=top, batch_size=batch_size)
    if is_main_process():
        if data is None and built.data != "test":
            typer.echo(f"note: this run has no test split; the report is on the {built.data} split", err=True)
        typer.echo(str(write_report(built, out if out is not None else run / "report.html")))
