"""``caveat demo``: the main job end to end — train, calibrate, evaluate with out-of-scope inputs,
write the report, print the figures that matter and a few decisions.

On the sample customer-service intents the project ships (examples/data, 20 intents) by default; on
CLINC150 with ``--data clinc150`` when ``$CAVEAT_DATA`` holds it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.errors import ConfigError
from caveat.io import data_root

# inputs the sample model answers (the first two), abstains on because the message fits several
# intents (lost card, not activated, declined; a return or a disputed charge), and sees as out of scope
EXAMPLES = [
    "i lost my card on the bus",
    "please let me talk to a real person",
    "my card isn't working",
    "i want my money back",
    "what's the weather on mars",
]

# per data set: out-of-scope calibration sets, the out-of-scope test set, the deployment share of
# out-of-scope traffic the risk bound assumes, and the target error rate on answered inputs
DATASETS = {
    "sample": {"ood_calibration": ["oos_validation"], "ood_test": "oos", "ood_rate": 0.1, "target_risk": 0.02},
    "clinc150": {"ood_calibration": ["oos_val"], "ood_test": "oos_test", "ood_rate": 0.1, "target_risk": 0.02},
}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _config(data: str, data_dir: Path, epochs: Optional[int], overrides: list[str]):

    from caveat.config import load_config

    if data == "sample":
        if not (data_dir / "intents_train.jsonl").is_file():
            raise ConfigError(
                f"{data_dir}/intents_train.jsonl not found; run from the project root or pass --data-dir examples/data"
            )
        return load_config(
            overrides=[
                f"data.root={data_dir.resolve()}",
                "data.train=intents_train.jsonl",
                "data.validation=intents_validation.jsonl",
                "data.calibration=intents_calibration.jsonl",
                "data.test=intents_test.jsonl",
                "data.ood={oos_validation: intents_oos_validation.jsonl, oos: intents_oos.jsonl}",
                f"train.epochs={epochs or 3}",
                "train.batch_size=16",
                *overrides,
            ]
        )
    if data == "clinc150":
        root = data_root().resolve()
        if not (root / "clinc150" / "data_full.json").is_file():
            raise ConfigError(
                f"CLINC150 not found at {root}/clinc150/data_full.json; set CAVEAT_DATA to the folder that holds "
                "clinc150/"
            )
        return load_config(
            overrides=[
                "task=text-classification",
                f"data.root={root}",
                "data.format=json",
                "data.train=clinc150/data_full.json#train",
                "data.validation=clinc150/data_full.json#val",
                "data.test=clinc150/data_full.json#test",
                "data.ood={oos_val: clinc150/data_full.json#oos_val, oos_test: clinc150/data_full.json#oos_test}",
                f"train.epochs={epochs or 1}",
                "train.group_by_length=false",
                *overrides,
            ]
        )
    raise ConfigError(f"--data {data!r} is not a demo data set; choose one of: {', '.join(DATASETS)}")


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    data: Annotated[
        str, typer.Option(help="sample (the intents in examples/data) or clinc150 (needs $CAVEAT_DATA).")
    ] = "sample",
    data_dir: Annotated[Path, typer.Option(help="Folder with the sample intents_*.jsonl files.")] = Path(
        "examples/data"
    ),
    epochs: Annotated[
        Optional[int], typer.Option(help="Training epochs (default: 3 on the sample, 1 on CLINC150).")
    ] = None,
    overrides: Annotated[
        list[str], typer.Option("--set", help="Config override key=value (repeatable), e.g. model.name_or_path=DIR.")
    ] = [],
) -> None:
    """Train the default backbone, calibrate, evaluate with out-of-scope inputs, write report.html."""
    from caveat.api import load
    from caveat.training.loop import Trainer

    cfg = _config(data, data_dir, epochs, list(overrides))
    spec = DATASETS[data]
    start = time.perf_counter()
    Trainer(cfg, out, progress=True).fit()
    model = load(out).calibrate(ood=spec["ood_calibration"], ood_rate=spec["ood_rate"], target_risk=spec["target_risk"])
    metrics = model.evaluate("test", ood=[spec["ood_test"]])
    report = model.report("test", ood=[spec["ood_test"]])
    rows = model.predict(EXAMPLES, top_k=1).to_records()
    seconds = time.perf_counter() - start
    print_summary(metrics, model.run.info["calibration"], spec, rows, seconds)
    print_next_steps(out, report)


def print_summary(metrics: dict, calibration: dict, spec: dict, rows: list[dict], seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    name = spec["ood_test"]
    decisions = metrics["decisions"][name]
    best = max(metrics["methods"], key=lambda k: metrics["methods"][k]["ood_auroc"][name])
    table = Table(title="caveat demo: what the model knows, and when it says so")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("test accuracy", f"{metrics['accuracy']:.1%}")
    table.add_row("ECE before → after temperature", f"{metrics['ece']:.2%} → {metrics['calibrated']['ece']:.2%}")
    table.add_row(f"out-of-scope AUROC ({best})", f"{metrics['methods'][best]['ood_auroc'][name]:.3f}")
    table.add_row(
        f"target: ≤ {spec['target_risk']:.0%} errors on answered (δ 0.05, {spec['ood_rate']:.0%} out-of-scope traffic)",
        f"error {decisions['combined_answered_error']:.2%} at coverage {decisions['combined_coverage']:.1%}"
        if decisions["combined_answered_error"] is not None
        else "abstains on all",
    )
    table.add_row("out-of-scope inputs not answered", f"{decisions['oos_recall']:.1%}")
    table.add_row("in-scope mistakes not answered", "{} of {}".format(*_mistakes_withheld(metrics, decisions)))
    table.add_row("time", f"{seconds:.0f} s")
    console = Console()
    console.print(table)
    risk = calibration["risk"]  # the threshold's promise in words; when unmet, the target this data can meet
    console.print(("warning: " if risk["threshold"] is None else "abstention: ") + risk["summary"], soft_wrap=True)
    examples = Table(title="a few inputs")
    for col in ("text", "label", "decision", "reason"):
        examples.add_column(col)
    for row in rows:
        examples.add_row(row["text"], row["label"], row.get("decision", "—"), row.get("reason", ""))
    console.print(examples)


def _mistakes_withheld(metrics: dict, decisions: dict) -> tuple[int, int]:
    """(withheld, all): the test set's wrong top-1 labels, and how many of them the policy did not answer."""
    mistakes = round((1 - decisions["in_scope_accuracy"]) * metrics["n"])
    answered = metrics["decisions"]["in_scope"]["answer"]
    accuracy = decisions["in_scope_answered_accuracy"]
    return mistakes - (round((1 - accuracy) * answered) if accuracy is not None else 0), mistakes


def next_steps(out: Path, report: Path) -> list[str]:
    """What to do after the demo, as lines to print: read the report, serve the run, train on your own data."""
    return [
        f"open the report: {report.resolve()}",
        f"serve the model with its abstention policy: caveat serve {out}",
        "train on your own CSV: caveat train --train my.csv --text-field text --label-field label --out runs/mine",
    ]


def print_next_steps(out: Path, report: Path) -> None:
    """Print :func:`next_steps` as a numbered list."""
    print("next steps:")
    for i, step in enumerate(next_steps(out, report), start=1):
        print(f"  {i}. {step}")
