"""Export: where an exported run comes from (``caveat export``), and its figures beside its source's."""

from __future__ import annotations

from pathlib import Path

from caveat.io import read_json
from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import metric, num
from caveat.types import Task

# (key in the evaluate figures, dotted for nested blocks; label on the page)
TEXT_FIGURES = (
    ("accuracy", "accuracy"),
    ("ece", "ECE (raw)"),
    ("calibrated.ece", "ECE (calibrated)"),
    ("calibrated.temperature", "temperature"),
    ("abstention.coverage", "answered share"),
    ("abstention.risk", "error on answered"),
)
TOKEN_FIGURES = (
    ("f1", "entity F1"),
    ("token_accuracy", "token accuracy"),
    ("calibrated.span_ece", "span ECE (calibrated)"),
    ("abstention.coverage", "kept spans"),
    ("abstention.risk", "error on kept spans"),
)


def _get(figures: dict, key: str):
    for part in key.split("."):
        figures = figures.get(part) if isinstance(figures, dict) else None
    return num(figures) if isinstance(figures, (int, float)) else None


def exported(ctx: Context) -> Section | None:
    """Present for runs written by ``caveat export``: the source run, format, quantisation and the export's
    parity check, and this split's figures beside the source's (read from the source's metrics.json)."""
    origin = ctx.run.info.get("exported_from")
    if not origin:
        return None
    source = Path(origin["run"])
    quantize = origin.get("quantize")
    section = Section(
        key="export",
        title="Exported model",
        metrics=[
            metric("exported_from", "exported from", str(source)),
            metric("format", "format", origin.get("format")),
            metric("quantize", "quantisation", f"{quantize} (dynamic, weights)" if quantize else "none (float32)"),
            metric("opset", "ONNX opset", origin.get("opset")),
            metric(
                "parity_max_abs",
                "float32 graph vs PyTorch",
                origin.get("parity_max_abs"),
                "largest |difference| of a logit or feature on a padded test batch at export (before quantisation)",
            ),
        ],
        notes=[
            "The source run's calibration is not copied: this run's temperature, sets and thresholds were fitted on "
            f"its own outputs (caveat calibrate {ctx.run.path})."
        ],
    )
    saved = source / "metrics.json"
    theirs = read_json(saved).get(ctx.data, {}) if saved.is_file() else {}
    figures = TOKEN_FIGURES if ctx.task is Task.TOKEN_CLASSIFICATION else TEXT_FIGURES
    rows = [[label, _get(theirs, key), _get(ctx.metrics, key)] for key, label in figures]
    section.tables.append(
        Table(
            key="export_compare",
            title=f"Source vs exported on {ctx.data!r}",
            columns=["figure", "source", "exported"],
            rows=rows,
            note="Source figures are read from its metrics.json; blank where it was not evaluated on this split "
            f"(caveat evaluate {source} --data {ctx.data}) or not calibrated.",
        )
    )
    return section
