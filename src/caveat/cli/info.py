"""``caveat info``: what a run is (task, labels, backbone, data, training, calibration, versions), read from its
caveat.json alone, as text for people (100 columns at most) or JSON."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

import typer

from caveat.cli.common import emit
from caveat.errors import ConfigError

WIDTH = 100  # at most; narrower terminals get their own width
FORMATS = ("text", "json")


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train (or caveat import).")],
    format: Annotated[str, typer.Option("--format", help="text (for people) or json (the same, as data).")] = "text",
) -> None:
    """Describe a run: task, labels, backbone, data and split sizes, training, calibration (temperature, prediction
    sets, out-of-scope check, abstention threshold and its guarantee), versions. Loads no model."""
    from caveat.models.describe import describe_run

    if format not in FORMATS:
        raise ConfigError(f"{{format}}={format!r} is not a format of caveat info; use text or json", fields=("format",))
    described = describe_run(run)
    if format == "json":
        emit(described)
    else:
        print_info(described)


def print_info(d: dict) -> None:
    """``describe_run``'s dict as a two-column page, at most 100 columns wide (the terminal's width if narrower)."""
    width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    rows = info_rows(d)
    key_width = max(len(key) for key, _ in rows)
    for key, value in rows:
        for i, line in enumerate(wrap(value, max(width - key_width - 2, 20))):
            typer.echo(f"{key if i == 0 else '':<{key_width}}  {line}".rstrip())


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between words; a word longer than a line (a path) is broken
    after a "/", and a piece longer than a line is cut. Runs of spaces (column alignment) are kept."""
    lines, line = [], ""
    for word in text.split(" "):
        sep = " " if line else ""
        if len(line) + len(sep) + len(word) <= width:
            line += sep + word
            continue
        if len(word) <= width:
            lines.append(line)
            line = word
            continue
        for piece in re.findall(r"[^/]*/|[^/]+", word):
            if len(line) + len(sep) + len(piece) > width and line:
                lines.append(line)
                line, sep = "", ""
            line += sep + piece
            sep = ""
            while len(line) > width:
                lines.append(line[:width])
                line = line[width:]
    return [*lines, line]


def info_rows(d: dict) -> list[tuple[str, str]]:
    """(label, text) rows of the page, top to bottom; an empty label continues the row above."""
    labels = d["labels"]
    more = labels["count"] - len(labels["first"])
    rows = [
        ("run", d["run"]),
        ("task", d["task"]),
        ("labels", f"{labels['count']}: {', '.join(labels['first'])}" + (f", … ({more} more)" if more else "")),
        ("backbone", _backbone(d["backbone"])),
    ]
    rows += _data(d["data"])
    rows.append(("training", _training(d["training"])))
    rows += _calibration(d["calibration"], d["run"])
    versions = ", ".join(f"{k} {v}" for k, v in d["versions"].items())
    rows.append(("versions", versions + (f" (created {d['created']})" if d.get("created") else "")))
    return rows


def _backbone(b: dict) -> str:
    text = b["name"]
    if b["name"] != b["name_or_path"] and "model_type" not in b:
        text += f" (packaged: model.name_or_path={b['name_or_path']})"
    if b.get("model_type"):
        text += f" (imported {b['model_type']} classifier)"
    if b.get("peft"):
        text += f", {b['peft']['method']} adapters (r={b['peft']['r']})"
    if b.get("ensemble_members"):
        text += f", ensemble of {b['ensemble_members']}"
    return text


def _data(data: dict) -> list[tuple[str, str]]:
    splits = data["splits"]
    if not splits:
        return [("data", "none recorded (an imported checkpoint without data)")]
    wide = max(len(name) for name in splits)
    rows = [
        ("data" if i == 0 else "", f"{name:<{wide}} {s['n']:>7,}  {s['source']}" + _skipped(s))
        for i, (name, s) in enumerate(splits.items())
    ]
    rows += [("out-of-scope", f"{name}: {source}") for name, source in data["ood"].items()]
    return rows


def _skipped(split: dict) -> str:
    return f" ({split['skipped']} invalid records skipped)" if split.get("skipped") else ""


def _training(t: dict | None) -> str:
    if t is None:
        return "none (an imported checkpoint)"
    text = f"{t['objective']}, {_num(t['epochs'])} epochs ({t['steps']} steps) in {_num(t['seconds'])} s"
    best = t["best_validation"]
    if best["value"] is not None:
        text += f"; best validation {best['metric']} {best['value']:.3f} at step {best['step']}"
    return text + ("; stopped early" if t.get("stopped_early") else "")


def _calibration(c: dict | None, run: str) -> list[tuple[str, str]]:
    if c is None:
        return [("calibration", f"none: add temperature, prediction sets and abstention with caveat calibrate {run}")]
    rows = [("calibration", f"fitted on the {c['fitted_on']} split ({c['n']} examples)")]
    ece = c.get("ece")
    rows.append(
        (
            "  temperature",
            f"{c['temperature']:.4g}" + (f" (ECE {ece['before']:.3f} → {ece['after']:.3f})" if ece else ""),
        )
    )
    if c.get("spans"):
        spans = c["spans"]
        ece = spans["ece"]
        rows.append(
            (
                "  spans",
                f"confidence by {spans['aggregate']}; precision {spans['precision']:.1%}; span ECE "
                f"{ece['before']:.3f} → {ece['after']:.3f}",
            )
        )
    if c.get("sets"):
        sets = c["sets"]
        per_class = ", per class" if sets.get("class_conditional") else ""
        level = f"{sets['level']:.0%}"
        rows.append(
            (
                "  prediction sets",
                f"{sets['method']}{per_class}, level {level}: a set holds the true label {level} of the time or more",
            )
        )
    if c.get("ood"):
        ood = c["ood"]
        keeps = f" (keeps {ood['keeps']:.0%} of validation inputs)" if ood.get("keeps") is not None else ""
        rows.append(("  out-of-scope check", f"{ood['method']}, threshold {ood['threshold']:.4g}{keeps}"))
    if c.get("abstention"):
        a = c["abstention"]
        when = f"answers when {a['score']} ≤ {a['threshold']:.4g}: " if a.get("threshold") is not None else ""
        rows.append(("  abstention", when + a["guarantee"]))
        if a.get("ood_sets"):
            sets = ", ".join(a["ood_sets"]["sets"] or [])
            rate = a["ood_sets"].get("rate")
            rows.append(("", f"out-of-scope sets counted as errors: {sets}" + (f" at rate {rate:.1%}" if rate else "")))
    if c.get("shift"):
        rows.append(("  target domain", c["shift"]["summary"] or f"calibrated for {c['shift']['target']}"))
    return rows


def _num(value) -> str:
    return "?" if value is None else f"{value:g}"
