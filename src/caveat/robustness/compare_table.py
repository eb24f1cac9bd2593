"""The table of ``caveat compare`` (``compare.json``'s ``columns`` and ``table``) and its markdown.

One row per run; the columns by task: text classification: accuracy, ECE, after-attack accuracy per attack, the
calibrated policy's figures per attack, accuracy and ECE per shifted and per adversarial set; NER: span F1 and
span ECE, after-attack span F1 and sentence accuracy, span figures per shifted set; both: ``s/step``. With
``held_out_attacks`` the sources each run trained on and its mean gains on held-out and on seen attacks
(``held_out.py``), and the markdown marks each after-attack figure of an attack held out from that run.
Cells are numbers, strings or None (shown as —).
"""

from __future__ import annotations

import math

HELD_OUT_COLUMNS = ["held-out gain", "seen gain"]  # mean after-attack gain over the baseline on each kind


def ner_table(result: dict) -> tuple[list[str], list[list]]:
    """The header and rows of an NER comparison table (numbers, or None for a missing figure)."""
    rows = result["rows"]
    calibrated = any(r["calibrated"] for r in rows)
    held_out = result.get("held_out_attacks", False)
    columns = ["run", "recipe", *(["trained on"] if held_out else [])]
    columns += ["span F1", "span ECE", *(["span ECE (calibrated)"] if calibrated else [])]
    for a in result["attacks"]:
        columns += [f"after {a} span F1", f"after {a} sentence accuracy"]
    columns += HELD_OUT_COLUMNS if held_out else []
    for name in result["shifts"]:
        columns += [f"{name} span F1", f"{name} span ECE", *([f"{name} span ECE (calibrated)"] if calibrated else [])]
    columns.append("s/step")
    table = []
    for r in rows:
        cells = [
            r["run"],
            r["recipe"],
            *([_sources(r)] if held_out else []),
            r["span_f1"],
            r["span_ece"],
            *([r["calibrated_span_ece"]] if calibrated else []),
        ]
        for a in result["attacks"]:
            cells += [r["attack"][a]["after_attack_span_f1"], r["attack"][a]["after_attack_accuracy"]]
        cells += [r["held_out_gain"], r["seen_gain"]] if held_out else []
        for name in result["shifts"]:
            s = r["shift"][name]
            cells += [s["span_f1"], s["span_ece"], *([s["calibrated_span_ece"]] if calibrated else [])]
        cells.append(r["training"]["seconds_per_step"])
        table.append(cells)
    return columns, table


def text_table(result: dict) -> tuple[list[str], list[list]]:
    """The header and rows of the comparison table (numbers, or None for a missing figure)."""
    rows = result["rows"]
    calibrated = any(r["calibrated"] for r in rows)
    policy = [a for a in result["attacks"] if any("answered_clean" in r["attack"][a] for r in rows)]
    held_out = result.get("held_out_attacks", False)
    adversarial = result.get("adversarial", {})
    columns = [
        "run",
        "recipe",
        *(["trained on"] if held_out else []),
        "accuracy",
        "ECE",
        *(["ECE (calibrated)"] if calibrated else []),
        *(f"after {a}" for a in result["attacks"]),
        *(HELD_OUT_COLUMNS if held_out else []),
        *(c for a in policy for c in (f"{a} caught", f"after {a} answered error")),
    ]
    for name in result["shifts"]:
        columns += [f"{name} accuracy", f"{name} ECE", *([f"{name} ECE (calibrated)"] if calibrated else [])]
    for name in adversarial:
        columns += [f"{name} accuracy", f"{name} ECE", *([f"{name} ECE (calibrated)"] if calibrated else [])]
        columns += [f"{name} answered", f"{name} answered error"] if calibrated else []
    columns.append("s/step")
    table = []
    for r in rows:
        cells = [
            r["run"],
            r["recipe"],
            *([_sources(r)] if held_out else []),
            r["accuracy"],
            r["ece"],
            *([r["calibrated_ece"]] if calibrated else []),
            *(r["attack"][a]["after_attack_accuracy"] for a in result["attacks"]),
            *([r["held_out_gain"], r["seen_gain"]] if held_out else []),
            *(r["attack"][a].get(k) for a in policy for k in ("caught", "answered_error_after_attack")),
        ]
        for name in result["shifts"]:
            s = r["shift"][name]
            cells += [s["accuracy"], s["ece"], *([s["calibrated_ece"]] if calibrated else [])]
        for name in adversarial:
            s = r["adversarial"][name]
            cells += [s["accuracy"], s["ece"], *([s["calibrated_ece"]] if calibrated else [])]
            cells += [s["answered"], s["answered_error"]] if calibrated else []
        cells.append(r["training"]["seconds_per_step"])
        table.append(cells)
    return columns, table


def _sources(row: dict) -> str | None:
    """The ``trained on`` cell: the candidate sources the run's training drew from, None (—) for none."""
    return ", ".join(row["training_sources"]) or None


def _cell(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x).replace("|", "\\|")


def held_out_cells(result: dict) -> set[tuple[int, int]]:
    """``(row, column)`` of the table cells that hold a run's figure after an attack held out from its training
    (``held_out_attacks``): the markdown marks them ``(held-out)``."""
    if not result.get("held_out_attacks"):
        return set()
    owner = {
        column: a
        for a in result["attacks"]
        for column in (f"after {a}", f"after {a} span F1", f"after {a} sentence accuracy")
    }
    return {
        (i, j)
        for i, row in enumerate(result["rows"])
        for j, column in enumerate(result["columns"])
        if column in owner and row["attack"][owner[column]].get("held_out")
    }


def to_markdown(result: dict) -> str:
    """The comparison as a markdown table, with its notes below; with ``held_out_attacks``, a run's after-attack
    figures on attacks held out from its training read ``0.5000 (held-out)``."""
    columns = result["columns"]
    marked = held_out_cells(result)
    lines = [
        f"Runs on `{result['data']}`",
        "",
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(columns))) + "|",
    ]
    lines += [
        "| " + " | ".join(_cell(c) + (" (held-out)" if (i, j) in marked else "") for j, c in enumerate(row)) + " |"
        for i, row in enumerate(result["table"])
    ]
    lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"
