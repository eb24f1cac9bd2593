"""Selective prediction: the risk-coverage curve with the calibrated operating point, conformal
prediction sets, and the policy's answer / abstain / route counts."""

from __future__ import annotations

import math

import numpy as np

from caveat.evaluation import calibration as cm
from caveat.report.context import Context
from caveat.report.schema import BarFigure, Group, LineFigure, Point, Section, Series, Table
from caveat.report.sections.base import downsample, metric
from caveat.types import Task


def risk_coverage(ctx: Context) -> Section | None:
    """Text runs: error rate of the answered inputs as the most confident are answered first."""
    if ctx.task is not Task.TEXT_CLASSIFICATION:
        return None
    m = ctx.metrics["calibrated"] if ctx.calibrated else ctx.metrics
    coverage, risk = cm.risk_coverage_curve(ctx.scores[ctx.score], ctx.errors)
    x, y = downsample(coverage, risk)
    which = "calibrated " if ctx.calibrated else ""
    section = Section(
        key="risk_coverage",
        title="Risk and coverage",
        metrics=[
            metric("aurc", "AURC", m["aurc"], "area under the risk-coverage curve; lower is better"),
            *(
                metric(f"accuracy_at_{c}", f"accuracy of the most confident {c}%", m[f"accuracy_at_{c}"])
                for c in (80, 90, 95)
            ),
        ],
    )
    figure = LineFigure(
        key="risk_coverage",
        title="Risk-coverage curve",
        xlabel="coverage (share answered)",
        ylabel="risk (error rate of answered)",
        series=[Series(name=f"{which}{ctx.score}", x=x, y=y)],
        note=f"Inputs answered in order of their {which}{ctx.score} score, most confident first.",
    )
    section.figures.append(figure)
    if not ctx.calibrated:
        section.notes.append(
            f"No operating point: run `caveat calibrate {ctx.run.path}` to choose an abstention "
            "threshold with a guaranteed bound on the error rate of answered inputs."
        )
        return section
    ab, rc = ctx.metrics["abstention"], ctx.caveats.risk
    threshold = rc.threshold if rc.threshold is not None and math.isfinite(rc.threshold) else None
    section.metrics += [
        metric("abstention.score", "abstention score", ab["score"]),
        metric("abstention.threshold", "threshold (answer when score ≤)", threshold),
        metric(
            "abstention.guarantee", "guarantee", ab["guarantee"], "fitted on the calibration split (Learn then Test)"
        ),
        metric("abstention.coverage", "coverage at the threshold", ab["coverage"]),
        metric("abstention.risk", "risk at the threshold", ab["risk"], "empty when nothing is answered"),
    ]
    figure.series.append(
        Series(name=f"target risk {rc.target_risk:g}", x=[0.0, 1.0], y=[rc.target_risk] * 2, style="dashed")
    )
    if ab["risk"] is not None:
        figure.points.append(
            Point(label=f"operating point ({ab['coverage']:.0%} answered)", x=ab["coverage"], y=ab["risk"])
        )
    else:
        section.notes.append(f"The calibrated threshold answers nothing: {rc.summary}")
    return section


def conformal_sets(ctx: Context) -> Section | None:
    """Calibrated text runs: coverage and size of the conformal prediction sets."""
    if ctx.task is not Task.TEXT_CLASSIFICATION or not ctx.calibrated:
        return None
    conformal, m = ctx.run.info["calibration"]["conformal"], ctx.metrics["conformal"]
    sizes = ctx.decision.prediction_set.sum(-1)  # (N,)
    counts = np.bincount(sizes, minlength=int(sizes.max()) + 1)
    return Section(
        key="conformal",
        title="Conformal prediction sets",
        metrics=[
            metric("conformal.method", "method", conformal["method"]),
            metric(
                "conformal.target",
                "target coverage",
                1 - conformal["alpha"],
                "1 - alpha, guaranteed on average over calibration sets",
            ),
            metric("conformal.coverage", "coverage", m["coverage"], "share of inputs whose set holds the true label"),
            metric("conformal.set_size", "mean set size", m["set_size"]),
            metric("conformal.singleton", "single-label sets", (sizes == 1).mean()),
            metric("conformal.empty", "empty sets", (sizes == 0).mean(), "no label is plausible at this level"),
        ],
        figures=[
            BarFigure(
                key="set_size",
                title="Prediction-set size",
                xlabel="labels in the set",
                ylabel="inputs",
                categories=[str(k) for k in range(len(counts))],
                groups=[Group(name=ctx.data, counts=counts.tolist())],
            )
        ],
    )


def decisions(ctx: Context) -> Section | None:
    """Calibrated text runs: what the policy does with the evaluated inputs (and each out-of-scope set)."""
    if ctx.task is not Task.TEXT_CLASSIFICATION or not ctx.calibrated:
        return None
    d = ctx.metrics["decisions"]
    rows = [
        [
            ctx.data,
            len(ctx.y),
            *(d["in_scope"][a] for a in ("answer", "abstain", "route")),
            d["in_scope"]["answer"] / len(ctx.y),
            None,
            None,
        ]
    ]
    for name in ctx.ood_decisions:
        row = d[name]
        n = sum(row[a] for a in ("answer", "abstain", "route"))
        rows.append(
            [
                f"{name} (out-of-scope)",
                n,
                row["answer"],
                row["abstain"],
                row["route"],
                row["answer"] / n,
                row["oos_recall"],
                row["combined_answered_error"],
            ]
        )
    answered = ctx.decision.answered
    return Section(
        key="decisions",
        title="Decisions",
        notes=[
            "The policy answers, abstains or routes to a human, from the abstention threshold, the Mahalanobis "
            "out-of-scope threshold and the prediction-set size (each input's reason is in `caveat predict`).",
        ],
        metrics=[
            metric(
                "answered_accuracy", "accuracy of answered", 1 - ctx.errors[answered].mean() if answered.any() else None
            ),
            metric("answered", "share answered", answered.mean()),
        ],
        tables=[
            Table(
                key="decisions",
                title="Actions",
                rows=rows,
                columns=[
                    "set",
                    "inputs",
                    "answer",
                    "abstain",
                    "route",
                    "answered",
                    "out-of-scope not answered",
                    "error of answered (with in-scope)",
                ],
                note="The last two columns are for out-of-scope sets: the share kept from an answer, and the error "
                "rate of all answered inputs of the evaluated split and that set together.",
            )
        ],
    )
