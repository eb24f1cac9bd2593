"""Relation runs: the official SemEval-2010 Task 8 score, each relation with its direction errors, and how a
calibrated policy treats "no relation" (``Other``) apart from confusions between two real relations."""

from __future__ import annotations

from caveat.evaluation.metrics import relation_decisions
from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import metric
from caveat.types import Task


def relations(ctx: Context) -> Section | None:
    """The relation figures ``caveat evaluate`` reports, on the report's split."""
    if ctx.task is not Task.RELATION_CLASSIFICATION:
        return None
    m = ctx.metrics
    section = Section(
        key="relations",
        title="Relations",
        notes=[
            "The official score of SemEval-2010 Task 8 (Hendrickx et al. 2010): the macro-F1 over the relations, "
            "a prediction right only with its direction, `Other` excluded from the average but not from the "
            "errors. Wrong direction: the right relation with its arguments swapped."
        ],
        metrics=[
            metric("relations.macro_f1", "official macro-F1", m["relation_macro_f1"]),
            metric("relations.precision", "macro precision", m["relation_macro_precision"]),
            metric("relations.recall", "macro recall", m["relation_macro_recall"]),
        ],
        tables=[
            Table(
                key="per_relation",
                title="Per relation (both directions)",
                columns=["relation", "precision", "recall", "F1", "support", "wrong direction"],
                rows=[
                    [name, r["precision"], r["recall"], r["f1"], r["support"], r["wrong_direction"]]
                    for name, r in sorted(m["per_relation"].items())
                ],
            )
        ],
    )
    if ctx.decision is not None:
        section.tables.append(_decisions(ctx))
    return section


def _decisions(ctx: Context) -> Table:
    d = relation_decisions(ctx.y, ctx.probs.argmax(-1), ctx.decision.answered, ctx.run.labels)
    rows = [
        ["withheld (abstained or routed): gold Other", d["withheld_no_relation"]],
        ["withheld: gold relation", d["withheld_relation"]],
        ["withheld that would have been wrong", d["withheld_would_be_wrong"]],
        ["answered errors: Other confused with a relation", d["answered_errors_other_vs_relation"]],
        ["answered errors: between two relations", d["answered_errors_between_relations"]],
        ["of which the right relation, wrong direction", d["answered_errors_wrong_direction"]],
        ["error among answered gold-Other inputs", d["answered_error_no_relation"]],
        ["error among answered gold-relation inputs", d["answered_error_relation"]],
    ]
    return Table(
        key="relation_decisions",
        title="The policy's decisions, the relation way",
        columns=["", "value"],
        rows=rows,
        note="Inputs with no relation (Other) and real relations fail differently: a policy that answers most "
        "errors on Other calls for more Other data, not a lower threshold.",
    )
