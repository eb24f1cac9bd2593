"""``caveat tune``: try robustness strengths alpha on validation, keep the best run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import build_config, emit


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)


def tune(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config.")] = None,
    alphas: Annotated[str, typer.Option(help="Comma-separated alphas to try.")] = "0.1,0.3,1.0,3.0",
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory of the best alpha; the sweep goes to OUT/sweep/.")] = Path("runs/tuned"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key (repeatable).")] = [],
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """Train one run per alpha, pick the best validation score, write OUT/sweep.json and OUT/sweep.md."""
    from caveat.errors import ConfigError
    from caveat.training.select import sweep_alpha

    try:
        values = [float(a) for a in alphas.split(",") if a.strip()]
    except ValueError:
        raise ConfigError(f"--alphas must be comma-separated numbers, e.g. 0.1,0.3,1. Got {alphas!r}.") from None
    emit(sweep_alpha(build_config(config, set_), out, values, progress=progress))
