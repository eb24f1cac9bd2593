"""Calibration: reliability before / after temperature scaling, and how confident right and wrong
predictions are."""

from __future__ import annotations

import numpy as np

from caveat.evaluation import calibration as cm
from caveat.report.context import Context
from caveat.report.schema import Group, HistogramFigure, ReliabilityCurve, ReliabilityFigure, Section
from caveat.report.sections.base import metric
from caveat.types import Task

N_BINS = 15  # as evaluation.calibration.ece's default, so the curve and the ECE shown agree
CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 21)


def _curve(name: str, probs: np.ndarray, y: np.ndarray, ece: float) -> ReliabilityCurve:
    bins = cm._bins(probs, y, N_BINS, False)  # the bins ece() sums over: (count, accuracy, confidence)
    return ReliabilityCurve(
        name=name,
        count=[c for c, _, _ in bins],
        accuracy=[a for _, a, _ in bins],
        confidence=[f for _, _, f in bins],
        ece=ece,
    )


def reliability(ctx: Context) -> Section | None:
    """Text runs: ECE, Brier, NLL and the reliability diagram, before and (when calibrated) after."""
    if ctx.task is not Task.TEXT_CLASSIFICATION:
        return None
    m = ctx.metrics
    section = Section(
        key="calibration",
        title="Calibration",
        metrics=[
            metric("ece", "ECE (raw model)", m["ece"], f"expected calibration error, {N_BINS} equal-width bins"),
            metric("ece_adaptive", "adaptive ECE (raw)", m["ece_adaptive"], f"{N_BINS} equal-mass bins"),
            metric("brier", "Brier (raw)", m["brier"]),
            metric("nll", "NLL (raw)", m["nll"]),
        ],
    )
    curves = [_curve("raw model", ctx.raw_probs, ctx.y, m["ece"])]
    if ctx.calibrated:
        c, fitted = m["calibrated"], ctx.run.info["calibration"]
        section.metrics += [
            metric(
                "calibrated.temperature",
                "temperature",
                c["temperature"],
                f"fitted by NLL on the {fitted.get('fitted_on', 'calibration')} split ({fitted.get('n')} examples)",
            ),
            metric("calibrated.ece", "ECE (calibrated)", c["ece"]),
            metric("calibrated.ece_adaptive", "adaptive ECE (calibrated)", c["ece_adaptive"]),
            metric("calibrated.brier", "Brier (calibrated)", c["brier"]),
            metric("calibrated.nll", "NLL (calibrated)", c["nll"]),
        ]
        curves.append(_curve("temperature-scaled", ctx.probs, ctx.y, c["ece"]))
    else:
        section.notes.append(
            f"Only the raw model is shown: run `caveat calibrate {ctx.run.path}` to fit a "
            "temperature on the calibration split and add the calibrated curve."
        )
    section.figures.append(
        ReliabilityFigure(
            key="reliability",
            title="Reliability diagram",
            n_bins=N_BINS,
            curves=curves,
            note="Each point is a non-empty confidence bin at its mean confidence; on the diagonal, confidence "
            "equals accuracy. Marker area grows with the bin's size.",
        )
    )
    return section


def confidence(ctx: Context) -> Section | None:
    """Text runs: the top-1 confidence of right and of wrong predictions, and how well it separates them."""
    if ctx.task is not Task.TEXT_CLASSIFICATION:
        return None
    conf, errors = ctx.probs.max(-1), ctx.errors
    which = "calibrated" if ctx.calibrated else "raw"
    auroc = (ctx.metrics["calibrated"] if ctx.calibrated else ctx.metrics)["error_auroc"]
    groups = [
        Group(name=f"{name} ({int(sel.sum())})", counts=np.histogram(conf[sel], CONFIDENCE_EDGES)[0].tolist())
        for name, sel in (("correct", ~errors), ("wrong", errors))
    ]
    return Section(
        key="confidence",
        title="Confidence of right and wrong predictions",
        metrics=[
            metric("n_correct", "correct", int((~errors).sum())),
            metric("n_wrong", "wrong", int(errors.sum())),
            metric(
                "mean_confidence_correct", "mean confidence, correct", conf[~errors].mean() if (~errors).any() else None
            ),
            metric("mean_confidence_wrong", "mean confidence, wrong", conf[errors].mean() if errors.any() else None),
            metric(
                "error_auroc",
                "error-detection AUROC",
                auroc,
                f"P(a wrong prediction has a higher {ctx.score} score than a right one); 0.5 is chance; "
                "empty when every prediction is right or every one is wrong",
            ),
        ],
        figures=[
            HistogramFigure(
                key="confidence",
                title=f"Top-1 confidence ({which})",
                xlabel="confidence",
                edges=CONFIDENCE_EDGES.tolist(),
                groups=groups,
            )
        ],
    )
