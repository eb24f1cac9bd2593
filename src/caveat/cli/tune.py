"""``caveat tune``: try values of a training setting (alpha by default) on validation, keep the best run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import build_config, emit
from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)


def _value(raw: str):
    """A number when ``raw`` reads as one (``1e-3`` included, which YAML leaves a string), else YAML (true, words)."""
    import yaml

    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return yaml.safe_load(raw)


def _values(raw: str, option: str) -> list:
    """``"0.1,0.3"`` -> [0.1, 0.3]."""

    items = [v.strip() for v in raw.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option} needs comma-separated values, e.g. 0.1,0.3,1. Got {raw!r}.")
    return [_value(v) for v in items]


def tune(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config.")] = None,
    alphas: Annotated[
        Optional[str], typer.Option(help="Comma-separated alphas to try (the same as --key train.alpha --values ...).")
    ] = None,
    key: Annotated[
        str, typer.Option(help="Config key to sweep, e.g. train.label_smoothing or train.adv.epsilon.")
    ] = "train.alpha",
    values: Annotated[Optional[str], typer.Option(help="Comma-separated values of --key to try.")] = None,
    criterion: Annotated[
        str,
        typer.Option(
            help=(
                "validation (clean validation score) or attack:NAME (validation score under that attack, e.g. "
                "attack:greedy)."
            )
        ),
    ] = "validation",
    attack_examples: Annotated[
        Optional[int], typer.Option(help="attack:NAME: attack the first N validation examples (default: all).")
    ] = None,
    clean_tolerance: Annotated[
        Optional[float],
        typer.Option(
            help=(
                "attack:NAME: only values whose clean validation score is within this of the best may win (e.g. 0.015)."
            )
        ),
    ] = None,
    similarity_model: Annotated[
        str, typer.Option(help="attack:NAME: sentence encoder, default (all-MiniLM-L6-v2) or a local model folder.")
    ] = "default",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory of the best value; the sweep goes to OUT/sweep/.")
    ] = Path("runs/tuned"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key (repeatable).")] = [],
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """Train one run per value (runs already in OUT/sweep/ with the same config are reused), score each on
    validation by --criterion, copy the best to OUT; write OUT/sweep.json and OUT/sweep.md."""
    from caveat.robustness.compare import AttackSettings
    from caveat.training.select import sweep, sweep_alpha

    if alphas is not None and (values is not None or key != "train.alpha"):
        raise ConfigError(
            "give either --alphas or --key/--values, not both (--alphas A,B is --key train.alpha --values A,B)"
        )
    options = {
        "criterion": criterion,
        "clean_tolerance": clean_tolerance,
        "similarity_model": similarity_model,
        "attack_settings": AttackSettings(max_examples=attack_examples),
        "progress": progress,
    }
    cfg = build_config(config, set_)
    if values is None:
        found = _values(alphas or "0.1,0.3,1.0,3.0", "--alphas")
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in found):
            raise ConfigError(f"--alphas must be comma-separated numbers, e.g. 0.1,0.3,1. Got {alphas!r}.")
        emit(sweep_alpha(cfg, out, found, **options))
        return
    emit(sweep(cfg, out, key, _values(values, "--values"), **options))
