"""Weak spots of a text classifier: the most confused label pairs and the examples to look at."""

from __future__ import annotations

from collections import Counter

import numpy as np

from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import num, shorten
from caveat.types import Task


def _examples(ctx: Context, key: str, title: str, idx: np.ndarray, note: str) -> Table:
    score, conf = ctx.scores[ctx.score], ctx.probs.max(-1)
    columns = ["text", "true", "predicted", "confidence", ctx.score]
    if ctx.calibrated:
        columns += ["prediction set", "decision"]
    rows = []
    for i in idx:
        row = [
            shorten(ctx.split.examples[i].text),
            ctx.labels[ctx.y[i]],
            ctx.labels[ctx.pred[i]],
            num(conf[i]),
            num(score[i]),
        ]
        if ctx.calibrated:
            row += [
                ", ".join(ctx.labels[c] for c in np.flatnonzero(ctx.decision.prediction_set[i])),
                str(ctx.decision.action[i]),
            ]
        rows.append(row)
    return Table(key=key, title=title, columns=columns, rows=rows, note=note)


def weak_spots(ctx: Context) -> Section | None:
    """Text runs: confused pairs (counts), the most uncertain inputs, and the most confident mistakes."""
    if ctx.task is not Task.TEXT_CLASSIFICATION:
        return None
    errors, score = ctx.errors, ctx.scores[ctx.score]
    support = np.bincount(ctx.y, minlength=len(ctx.labels))
    pairs = Counter(zip(ctx.y[errors].tolist(), ctx.pred[errors].tolist()))
    confused = sorted(pairs.items(), key=lambda kv: (-kv[1], ctx.labels[kv[0][0]], ctx.labels[kv[0][1]]))[: ctx.top]
    which = "calibrated " if ctx.calibrated else ""
    uncertain = np.argsort(-score, kind="stable")[: ctx.top]  # ties: input order
    wrong = np.flatnonzero(errors)
    confident_wrong = wrong[np.argsort(score[wrong], kind="stable")][: ctx.top]
    return Section(
        key="weak_spots",
        title="Weak spots",
        tables=[
            Table(
                key="confused_pairs",
                title="Most confused label pairs",
                columns=["true", "predicted", "count", "share of true"],
                rows=[[ctx.labels[t], ctx.labels[p], n, n / support[t]] for (t, p), n in confused],
                note="" if confused else "No mistakes on this split.",
            ),
            _examples(
                ctx,
                "uncertain",
                "Most uncertain inputs",
                uncertain,
                f"Highest {which}{ctx.score} score first; texts longer than 300 characters are cut.",
            ),
            _examples(
                ctx,
                "confident_mistakes",
                "Most confident mistakes",
                confident_wrong,
                "Wrong predictions with the lowest uncertainty: candidates for label noise or blind spots."
                if len(wrong)
                else "No mistakes on this split.",
            ),
        ],
    )
