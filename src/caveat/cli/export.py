"""``caveat export``: a run as an ONNX graph served by ONNX Runtime, in a new run directory to calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New run directory to write (must not hold files).")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    quantize: Annotated[
        Optional[str], typer.Option(help="int8: dynamic int8 weights (smaller, faster on CPU); default float32.")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset of the graph.", min=17)] = 17,
) -> None:
    """Export RUN to ONNX as the run OUT (same labels, config and data); prints a JSON summary. OUT is not
    calibrated: calibrate it on its own calibration split before trusting its decisions."""
    from caveat.training.export import export_run

    summary = export_run(run, out, format=format, quantize=quantize, opset=opset)
    emit(summary)
    typer.echo(f"calibrate the exported run before use: {summary['next']}", err=True)
