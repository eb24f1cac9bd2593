"""``caveat train``: fine-tune into a run directory, then score validation and test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import build_config, emit


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config (optional when --train is given).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path("runs/latest"),
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a config key: --set train.lr=3e-5 (repeatable).")
    ] = [],
    task: Annotated[
        Optional[str], typer.Option(help="text-classification, token-classification or relation-classification.")
    ] = None,
    train_file: Annotated[Optional[str], typer.Option("--train", help="Training file (sets data.train).")] = None,
    validation: Annotated[Optional[str], typer.Option(help="Validation file (sets data.validation).")] = None,
    test: Annotated[Optional[str], typer.Option(help="Test file (sets data.test).")] = None,
    text_field: Annotated[Optional[str], typer.Option(help="Text field name (sets data.text_field).")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Label field name (sets data.label_field).")] = None,
    head_field: Annotated[
        Optional[str], typer.Option(help="Relation tasks: field of the first entity's [start, end] span.")
    ] = None,
    tail_field: Annotated[
        Optional[str], typer.Option(help="Relation tasks: field of the second entity's [start, end] span.")
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="Backbone: 'default', a folder or a hub name.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its checkpoint.")] = False,
    sweep: Annotated[
        Optional[str], typer.Option(help="Comma-separated alphas: tune train.alpha on validation (as caveat tune).")
    ] = None,
    ensemble: Annotated[
        int, typer.Option(help="Train N members with seeds seed..seed+N-1 (deep ensemble).", min=1)
    ] = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Fine-tune a transformer with a robust objective; prints a JSON summary."""
    from caveat.training.ensemble import train_ensemble
    from caveat.training.run import run_training
    from caveat.training.select import sweep_alpha

    cfg = build_config(
        config,
        set_,
        task=task,
        train=train_file,
        validation=validation,
        test=test,
        text_field=text_field,
        label_field=label_field,
        head_field=head_field,
        tail_field=tail_field,
        model=model,
    )
    if sweep:
        emit(sweep_alpha(cfg, out, [float(a) for a in sweep.split(",")], progress=progress))
        return
    if ensemble > 1:
        emit(train_ensemble(cfg, out, ensemble, progress=progress))
        return
    emit(run_training(cfg, out, resume=resume, progress=progress))
