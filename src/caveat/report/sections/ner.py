"""NER: span confidence (how much to trust each predicted entity), the keep/flag threshold of a
calibrated run, and the least trusted spans."""

from __future__ import annotations

import math

import numpy as np

from caveat.evaluation import calibration as cm
from caveat.models.tags import bio_spans
from caveat.report.context import Context
from caveat.report.schema import Group, HistogramFigure, LineFigure, Point, Section, Series, Table
from caveat.report.sections.base import downsample, metric, num, shorten
from caveat.types import Task
from caveat.uncertainty.tokens import AGGREGATIONS, binary_ece

CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 21)


def _marked(tokens, start: int, end: int) -> str:
    return shorten(" ".join([*tokens[:start], "[", *tokens[start:end], "]", *tokens[end:]]))


def _which(ctx: Context) -> str:
    return f"calibrated {ctx.caveats.aggregate}" if ctx.calibrated else "raw product"


def span_confidence(ctx: Context) -> Section | None:
    """Token runs: span-level calibration, wrong-span detection, and the calibrated keep threshold."""
    if ctx.task is not Task.TOKEN_CLASSIFICATION:
        return None
    report = ctx.metrics["spans"]
    section = Section(
        key="spans",
        title="Span confidence",
        notes=[
            "A span's confidence aggregates the probabilities of its words' predicted tags: product, min or mean. "
            "The table compares them on the raw model. AUROC: how well 1 - confidence ranks wrong spans above right "
            "ones; precision@k: precision of the k% most confident spans."
        ],
        metrics=[
            metric("spans.n_spans", "predicted spans", report["n_spans"]),
            metric("spans.precision", "exact-match precision", report["precision"]),
        ],
        tables=[
            Table(
                key="aggregations",
                title="Per aggregation (raw model)",
                columns=[
                    "aggregation",
                    "ECE",
                    "wrong-span AUROC",
                    "AURC",
                    "precision@50",
                    "precision@80",
                    "precision@90",
                ],
                rows=[
                    [
                        name,
                        r["ece"],
                        r["auroc"],
                        r["aurc"],
                        r["precision_at_50"],
                        r["precision_at_80"],
                        r["precision_at_90"],
                    ]
                    for name in AGGREGATIONS
                    if (r := report.get(name))
                ],
            )
        ],
    )
    if not ctx.spans:
        section.notes.append("The model predicts no entity span on this split: there is no span confidence to show.")
        return section
    conf = np.array([s[4] for s in ctx.spans])  # (S,)
    right = np.array([s[5] for s in ctx.spans], dtype=bool)
    section.figures.append(
        HistogramFigure(
            key="span_confidence",
            title=f"Span confidence ({_which(ctx)})",
            xlabel="confidence",
            edges=CONFIDENCE_EDGES.tolist(),
            groups=[
                Group(name=f"{name} ({int(sel.sum())})", counts=np.histogram(conf[sel], CONFIDENCE_EDGES)[0].tolist())
                for name, sel in (("right span", right), ("wrong span", ~right))
            ],
        )
    )
    coverage, risk = cm.risk_coverage_curve(1.0 - conf, ~right)
    x, y = downsample(coverage, risk)
    curve = LineFigure(
        key="span_risk_coverage",
        title="Span risk-coverage",
        xlabel="coverage (share of spans kept)",
        ylabel="risk (wrong share of kept)",
        series=[Series(name=_which(ctx), x=x, y=y)],
        note="Spans kept in order of confidence, most confident first.",
    )
    section.figures.append(curve)
    if not ctx.calibrated:
        section.notes.append(
            f"Run `caveat calibrate {ctx.run.path}` to fit a word temperature and a threshold that "
            "keeps spans with a guaranteed bound on the wrong share of the kept ones."
        )
        return section
    rc = ctx.caveats.risk
    kept = rc.decide(1.0 - conf)  # (S,) True = keep
    kept_risk = float((~right[kept]).mean()) if kept.any() else None
    section.metrics += [
        metric("calibrated.temperature", "word temperature", ctx.caveats.temperature),
        metric("calibrated.aggregate", "aggregation", ctx.caveats.aggregate),
        metric("calibrated.span_ece", "span ECE (calibrated)", binary_ece(conf, right)),
        metric("abstention.guarantee", "guarantee on kept spans", rc.guarantee),
        metric(
            "abstention.min_confidence",
            "keep when confidence ≥",
            1.0 - rc.threshold if rc.threshold is not None and math.isfinite(rc.threshold) else None,
        ),
        metric("abstention.coverage", "share of spans kept", kept.mean()),
        metric("abstention.risk", "wrong share of kept", kept_risk, "empty when no span is kept"),
    ]
    curve.series.append(
        Series(name=f"target risk {rc.target_risk:g}", x=[0.0, 1.0], y=[rc.target_risk] * 2, style="dashed")
    )
    if kept_risk is not None:
        curve.points.append(Point(label=f"threshold ({kept.mean():.0%} kept)", x=float(kept.mean()), y=kept_risk))
    if rc.threshold is not None and not math.isfinite(rc.threshold):
        section.notes.append(f"The calibrated threshold keeps no span: {rc.summary}")
    return section


def weak_spans(ctx: Context) -> Section | None:
    """Token runs: the least confident predicted spans, and gold entities the model missed."""
    if ctx.task is not Task.TOKEN_CLASSIFICATION:
        return None
    tokens = [ex.tokens for ex in ctx.split.examples]
    least = sorted(ctx.spans, key=lambda s: s[4])[: ctx.top]
    missed = []
    for i, (pred, gold) in enumerate(zip(ctx.pred_tags, ctx.gold_tags)):
        found = set(bio_spans(pred))
        missed += [(i, s, e, typ) for s, e, typ in bio_spans(gold) if (s, e, typ) not in found]
    columns = ["sentence", "span", "type", "right", "confidence"]
    if ctx.calibrated:
        columns.append("decision")
    rows = []
    for i, s, e, typ, c, ok in least:
        row = [_marked(tokens[i], s, e), " ".join(tokens[i][s:e]), typ, ok, num(c)]
        if ctx.calibrated:
            row.append("keep" if ctx.caveats.risk.decide(np.array([1.0 - c]))[0] else "flag")
        rows.append(row)
    more = f"; the first {ctx.top} shown." if len(missed) > ctx.top else "."
    return Section(
        key="weak_spots",
        title="Weak spots",
        tables=[
            Table(
                key="uncertain_spans",
                title="Least confident predicted spans",
                columns=columns,
                rows=rows,
                note=f"The span is in [brackets]; confidence: {_which(ctx)} of its words' tag probabilities."
                if rows
                else "The model predicts no span on this split.",
            ),
            Table(
                key="missed",
                title="Missed gold entities",
                columns=["sentence", "span", "type"],
                rows=[[_marked(tokens[i], s, e), " ".join(tokens[i][s:e]), typ] for i, s, e, typ in missed[: ctx.top]],
                note=f"{len(missed)} gold entities have no exactly matching predicted span{more}",
            ),
        ],
    )
