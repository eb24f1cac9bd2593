"""``caveat calibrate``: fit temperature, conformal sets, a risk-bounded abstention threshold and an
OOD threshold on the run's calibration split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import emit
from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)


def calibrate(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    level: Annotated[
        Optional[float],
        typer.Option(help="Prediction sets hold the true label with probability >= level (default 0.9)."),
    ] = None,
    alpha: Annotated[
        Optional[float], typer.Option(help="Deprecated: use --level (alpha = 1 - level).", hidden=True)
    ] = None,
    conformal: Annotated[str, typer.Option(help="Conformal score: lac (smallest sets), aps or raps.")] = "lac",
    score: Annotated[
        str,
        typer.Option(
            help="Uncertainty score the abstention threshold is set on: least_confidence (1 - top probability), "
            "entropy or energy. The old name msp (of least_confidence) still works until the next release."
        ),
    ] = "least_confidence",
    target_risk: Annotated[float, typer.Option(help="Highest error rate allowed on answered inputs.")] = 0.02,
    delta: Annotated[float, typer.Option(help="The risk bound holds with probability >= 1 - delta.")] = 0.05,
    ood: Annotated[
        list[str],
        typer.Option(
            help=(
                "Out-of-scope calibration set (a data.ood name or a file of texts; repeatable): the risk bound then "
                "covers out-of-scope traffic."
            )
        ),
    ] = [],
    ood_rate: Annotated[
        Optional[float],
        typer.Option(
            help="Expected share of out-of-scope inputs at deployment (default: their share in the calibration data)."
        ),
    ] = None,
    target: Annotated[
        list[str],
        typer.Option(
            help=(
                "Unlabelled texts of the domain the run will serve (repeatable): one per line, a .jsonl/.csv with "
                "the run's text field, or a log written by caveat serve --log-inputs. Temperature, prediction sets "
                "and the abstention threshold are then fitted for that domain by importance weights."
            )
        ),
    ] = [],
) -> None:
    """Calibrate a run (text or NER); predict then reports uncertainty, sets and decisions."""
    from caveat.calibration.run import calibrate_run

    if alpha is not None and level is not None:
        raise ConfigError(
            f"--alpha {alpha} and --level {level} both set the prediction sets' level; give only --level",
            fields=("level",),
        )
    if level is not None and not 0 < level < 1:
        raise ConfigError(f"{{level}} must be in (0, 1); got {level}. Use e.g. --level 0.9", fields=("level",))
    if alpha is not None:
        typer.echo(f"warning: --alpha is deprecated and goes in the next release; use --level {1 - alpha:g}", err=True)
    summary = calibrate_run(
        run,
        alpha=alpha if alpha is not None else round(1 - (level if level is not None else 0.9), 12),
        conformal=conformal,
        score=score,
        target_risk=target_risk,
        delta=delta,
        ood=ood,
        ood_rate=ood_rate,
        target=target,
    )
    emit(summary)
    if summary.get("shift"):
        typer.echo(summary["shift"]["summary"], err=True)
    words = summary["risk"].get("summary")
    if words:  # the decision in words on stderr, where a person reads it; stdout stays one JSON object
        typer.echo(("warning: " if summary["risk"]["threshold"] is None else "") + words, err=True)
