"""``caveat import``: a run directory from a Hugging Face classification checkpoint fine-tuned elsewhere."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit


def register(app: typer.Typer) -> None:
    """Add ``caveat import`` to the application."""
    app.command("import")(import_command)


def import_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder written by save_pretrained of an AutoModelForSequenceClassification or "
            "AutoModelForTokenClassification (safetensors), with its tokenizer."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (new or empty).")],
    calibration: Annotated[
        Optional[str], typer.Option(help="Labelled data held out from fine-tuning (sets data.calibration).")
    ] = None,
    validation: Annotated[Optional[str], typer.Option(help="Validation file (sets data.validation).")] = None,
    test: Annotated[Optional[str], typer.Option(help="Test file (sets data.test).")] = None,
    train_file: Annotated[
        Optional[str],
        typer.Option("--train", help="The data the checkpoint was fine-tuned on, if you have it (sets data.train)."),
    ] = None,
    text_field: Annotated[Optional[str], typer.Option(help="Text field name (sets data.text_field).")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Label field name (sets data.label_field).")] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated class names in id order, replacing the checkpoint's id2label."),
    ] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a config key: --set data.format=csv (repeatable).")
    ] = [],
    force: Annotated[bool, typer.Option("--force", help="Replace a caveat run already at --out.")] = False,
) -> None:
    """Import a fine-tuned transformers classifier as a caveat run; prints a JSON summary and the next commands."""
    from caveat.training.importing import run_import

    summary = run_import(
        folder,
        out,
        train=train_file,
        validation=validation,
        calibration=calibration,
        test=test,
        text_field=text_field,
        label_field=label_field,
        labels=labels.split(",") if labels is not None else None,
        overrides=set_,
        force=force,
    )
    emit({**summary, "next": next_commands(summary, folder, out)})


def next_commands(summary: dict, folder: Path, out: Path) -> list[str]:
    """The commands to run next: with data, calibrate (and evaluate test); without, import again with data."""
    run = shlex.quote(str(out))
    example = "alice visited paris" if summary["task"] == "token-classification" else "some text to classify"
    predict = f'caveat predict {run} "{example}"'
    if not summary["data"]:
        return [
            f"caveat import {shlex.quote(str(folder))} --out {run} --force --calibration FILE   "
            "# FILE: labelled data held out from fine-tuning; add --train FILE2 (the fine-tuning data) to keep all of "
            "FILE for calibration",
            f"{predict}   # works now, without calibration",
        ]
    commands = [f"caveat calibrate {run}", predict]
    if "test" in summary["data"]:
        commands.append(f"caveat evaluate {run} --data test")
    return commands
