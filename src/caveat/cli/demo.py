"""``caveat demo``: the main job end to end on the sample data the project ships."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from caveat.cli.common import emit

EXAMPLES = ["where is my parcel, it was due yesterday", "i lost my card on the bus", "what time do you open on sunday",
            "please let me talk to a real person", "what's the weather on mars"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    data_dir: Annotated[Path, typer.Option(help="Folder with the sample intents_*.jsonl files.")] = Path("examples/data"),
) -> None:
    """Train the default backbone on the sample customer-service intents, evaluate, predict."""
    from caveat.cli.predict import format_predictions
    from caveat.cli.train import run_training
    from caveat.config import load_config
    from caveat.errors import ConfigError
    from caveat.inference import Predictor

    if not (data_dir / "intents_train.jsonl").is_file():
        raise ConfigError(f"{data_dir}/intents_train.jsonl not found; run from the project root or pass --data-dir examples/data")
    start = time.perf_counter()
    cfg = load_config(overrides=[f"data.root={data_dir.resolve()}", "data.train=intents_train.jsonl",
                                 "data.validation=intents_validation.jsonl", "data.test=intents_test.jsonl",
                                 "train.epochs=4", "train.batch_size=16"])
    result = run_training(cfg, out)
    predictor = Predictor.from_run(out)
    result["examples"] = [{k: r[k] for k in ("text", "label", "probability")} for r in format_predictions(predictor, EXAMPLES, 3)]
    result["seconds"] = round(time.perf_counter() - start, 1)
    emit(result)
