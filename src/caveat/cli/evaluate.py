"""``caveat evaluate``: metrics of a run on a split or a file (JSON, or a table for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit
from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    data: Annotated[
        str, typer.Option(help="Split name (train, validation, calibration, test) or a labelled file.")
    ] = "test",
    ood: Annotated[
        list[str], typer.Option(help="Out-of-scope set: a data.ood name of the run or a file of texts (repeatable).")
    ] = [],
    methods: Annotated[
        Optional[str],
        typer.Option(
            help=(
                "Uncertainty methods side by side, e.g. msp,energy,mahalanobis,laplace,mc_dropout,ensemble, and "
                "laplace_lora for LoRA runs (default: those needing no extra pass)."
            )
        ),
    ] = None,
    mc_samples: Annotated[
        int,
        typer.Option(
            help="Also evaluate MC dropout with this many samples (0: off; --methods mc_dropout alone uses 10)."
        ),
    ] = 0,
    mc_top_layers: Annotated[
        Optional[int], typer.Option(help="Efficient MC dropout: sample only the top L layers and the head.")
    ] = None,
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Also evaluate the run's deep-ensemble members (train --ensemble N).")
    ] = False,
    shift: Annotated[
        list[str],
        typer.Option(
            help=(
                "Shifted labelled set NAME=FILE, any format the run reads, e.g. cr=custrev.all (repeatable); figures "
                "under shift.NAME."
            )
        ),
    ] = [],
    explain_faithfulness: Annotated[
        bool,
        typer.Option(
            "--explain-faithfulness",
            help=(
                "Also measure how faithful, stable and costly each explanation method is (text runs); figures under "
                "explanations."
            ),
        ),
    ] = False,
    explain_methods: Annotated[
        str, typer.Option(help="Methods for --explain-faithfulness, comma-separated.")
    ] = "ig,shap,lime,occlusion",
    max_examples: Annotated[
        int, typer.Option(help="Texts explained by --explain-faithfulness (a seeded sample).")
    ] = 200,
    format: Annotated[str, typer.Option("--format", help="json or table.")] = "json",
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Score a run; also merged into RUN/metrics.json. Keys are listed in docs/metrics.md."""
    from caveat.evaluation.run import evaluate_run

    if format not in ("json", "table"):
        raise ConfigError(f"--format must be json or table. Got {format!r}.")
    metrics = evaluate_run(
        run,
        data,
        ood=ood,
        methods=methods,
        mc_samples=mc_samples,
        mc_top_layers=mc_top_layers,
        ensemble=ensemble,
        batch_size=batch_size,
        shift=shift,
        explain=(
            {"methods": [m.strip() for m in explain_methods.split(",") if m.strip()], "max_examples": max_examples}
            if explain_faithfulness
            else None
        ),
    )
    if format == "json":
        emit(metrics)
    else:
        print_table(metrics)


def print_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{metrics['task']} on {metrics['data']} ({metrics['source']})")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            summary.add_row(key, f"{value:.4f}")
        elif isinstance(value, int):
            summary.add_row(key, str(value))
    console.print(summary)
    if metrics.get("methods"):
        sets = sorted({k for row in metrics["methods"].values() for k in row.get("ood_auroc", {})})
        table = Table(title="uncertainty methods")
        for col in ("method", "score", "ece", "aurc", "error auroc", *[f"ood auroc {k}" for k in sets], "cost ×"):
            table.add_column(col, justify="left" if col in ("method", "score") else "right")
        for name, row in metrics["methods"].items():
            cells = [
                row["ece"],
                row["aurc"],
                row["error_auroc"],
                *[row.get("ood_auroc", {}).get(k) for k in sets],
                row["cost_ratio"],
            ]
            table.add_row(name, row["score"], *("—" if v is None else f"{v:.4f}" for v in cells))
        console.print(table)
    if metrics.get("shift"):
        table = Table(title=f"shift (in-domain: {metrics['data']})")
        for col in ("set", "n", "accuracy", "macro f1", "ece", "calibrated ece", "aurc", "msp auroc"):
            table.add_column(col, justify="left" if col == "set" else "right")
        rows = [
            (metrics["data"], metrics, None),
            *((k, r, r["ood"]["msp"]["auroc"]) for k, r in metrics["shift"].items()),
        ]
        for name, row, auroc in rows:  # msp auroc: shifted vs in-domain inputs, so none for the in-domain row
            cells = [
                row["accuracy"],
                row["macro_f1"],
                row["ece"],
                row.get("calibrated", {}).get("ece"),
                row["aurc"],
                auroc,
            ]
            table.add_row(name, str(row["n"]), *("—" if v is None else f"{v:.4f}" for v in cells))
        console.print(table)
    per = metrics.get("per_type") or metrics.get("per_class") or {}
    detail = Table(title="per type" if "per_type" in metrics else "per class (20 weakest by f1)")
    for col in ("label", "precision", "recall", "f1", "support"):
        detail.add_column(col, justify="left" if col == "label" else "right")
    rows = sorted(per.items(), key=lambda kv: kv[1]["f1"])[:20] if "per_class" in metrics else per.items()
    for name, row in rows:
        detail.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    console.print(detail)
