"""Distribution shift: the run on each shifted set next to the report's split, as ``caveat evaluate
--shift`` saved it in metrics.json (read, not recomputed: the shifted files are not the report's input)."""

from __future__ import annotations

from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import num, saved_metrics


def shift(ctx: Context) -> Section | None:
    """Shown when metrics.json holds ``<data>.shift.*``: accuracy, ECE and AURC per set, and how far
    the uncertainty scores move (AUROC of telling shifted from in-domain inputs, means)."""
    saved = saved_metrics(ctx.run).get(ctx.data, {})
    shifts = saved.get("shift") or {}
    if not shifts:
        return None
    calibrated = any("calibrated" in s for s in shifts.values())
    columns = [
        "set",
        "examples",
        "accuracy",
        "macro F1",
        "ECE",
        *(["ECE (calibrated)"] if calibrated else []),
        "AURC",
        "Δ accuracy",
    ]

    def row(name: str, m: dict, delta) -> list:
        cal = [m.get("calibrated", {}).get("ece")] if calibrated else []
        return [name, m["n"], m["accuracy"], m["macro_f1"], m["ece"], *cal, m["aurc"], delta]

    rows = [row(f"{ctx.data} (in-domain)", saved, None)]
    rows += [row(f"{name} ({s['source']})", s, s["delta"]["accuracy"]) for name, s in shifts.items()]
    ood = [
        [
            name,
            score,
            o["auroc"],
            o["fpr95"],
            o["in_domain"]["mean"],
            o["shifted"]["mean"],
            o["in_domain"]["q50"],
            o["shifted"]["q50"],
        ]
        for name, s in shifts.items()
        for score, o in s["ood"].items()
    ]
    notes = [
        f"From `{ctx.run.path}/metrics.json`, as `caveat evaluate {ctx.run.path} --data {ctx.data} --shift NAME=FILE` "
        "wrote it; run that again to update these figures. Δ accuracy: shifted minus in-domain. ECE is of the raw "
        "model unless marked calibrated."
    ]
    now = ctx.metrics.get("accuracy")
    if saved.get("accuracy") is not None and now is not None and abs(saved["accuracy"] - now) > 1e-9:
        notes.append(
            f"The saved in-domain accuracy ({saved['accuracy']:.4f}) differs from this report's "
            f"({now:.4f}): the run changed since; evaluate it again."
        )
    return Section(
        key="shift",
        title="Distribution shift",
        notes=notes,
        tables=[
            Table(
                key="shift",
                title="Accuracy and calibration per set",
                columns=columns,
                rows=[[num(c) for c in r] for r in rows],
            ),
            Table(
                key="shift_scores",
                title="Uncertainty scores, shifted vs in-domain",
                columns=[
                    "set",
                    "score",
                    "AUROC",
                    "FPR@95",
                    "mean (in-domain)",
                    "mean (shifted)",
                    "median (in-domain)",
                    "median (shifted)",
                ],
                rows=[[num(c) for c in r] for r in ood],
                note="AUROC: the chance that a shifted input scores higher (more uncertain) than an in-domain one; "
                "0.5: the score does not see the shift.",
            ),
        ],
    )
