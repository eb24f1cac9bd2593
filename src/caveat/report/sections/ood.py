"""Out-of-scope detection: score histograms of in-scope vs each out-of-scope set, AUROC per score."""

from __future__ import annotations

import numpy as np

from caveat.evaluation import calibration as cm
from caveat.report.context import Context
from caveat.report.schema import Group, HistogramFigure, Section, Table
from caveat.report.sections.base import metric

N_BINS = 30


def out_of_scope(ctx: Context) -> Section | None:
    """Text runs given ``--ood``: how well each uncertainty score tells out-of-scope inputs apart."""
    if not ctx.ood_scores:
        return None
    rows, figures = [], []
    for score, inside in ctx.scores.items():
        for name, scores in ctx.ood_scores.items():
            rows.append([name, score, cm.ood_auroc(inside, scores[score]), cm.fpr_at_95_tpr(inside, scores[score])])
        values = [inside] + [s[score] for s in ctx.ood_scores.values()]
        edges = np.histogram_bin_edges(np.concatenate(values), bins=N_BINS)
        groups = [
            Group(name=f"{name} ({len(v)})", counts=np.histogram(v, edges)[0].tolist())
            for name, v in zip([f"{ctx.data} (in-scope)", *ctx.ood_scores], values)
        ]
        figures.append(
            HistogramFigure(
                key=f"ood_{score}",
                title=f"{score} score",
                xlabel=f"{score} (higher = more uncertain)",
                edges=edges.tolist(),
                groups=groups,
            )
        )
    which = (
        "of the temperature-scaled model, and the Mahalanobis distance of the features"
        if ctx.calibrated
        else "of the raw model"
    )
    best = max(rows, key=lambda r: r[2])
    return Section(
        key="ood",
        title="Out-of-scope detection",
        notes=[
            f"Scores {which}; higher means more likely out-of-scope. AUROC: the chance that an out-of-scope input "
            "scores higher than an in-scope one (0.5 is chance). FPR@95: the share of in-scope inputs flagged when "
            "95% of the out-of-scope ones are."
        ],
        metrics=[
            metric("in_scope", f"in-scope inputs ({ctx.data})", len(ctx.y)),
            *(metric(f"n.{name}", f"out-of-scope inputs ({name})", n) for name, n in ctx.ood_sources.items()),
            metric("best_auroc", f"best AUROC ({best[1]} on {best[0]})", best[2]),
        ],
        tables=[Table(key="ood", title="Detection per score", columns=["set", "score", "AUROC", "FPR@95"], rows=rows)],
        figures=figures,
    )
