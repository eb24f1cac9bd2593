"""Task scores: accuracy and F1 (text), entity F1 per type (NER)."""

from __future__ import annotations

from caveat.report.context import Context
from caveat.report.schema import Section, Table
from caveat.report.sections.base import metric
from caveat.types import Task

MAX_CLASSES = 20  # per-class rows shown; the weakest first


def _per_label(key: str, title: str, per: dict, limit: int | None = None) -> Table:
    items = sorted(per.items(), key=lambda kv: (kv[1]["f1"], kv[0])) if limit else list(per.items())
    shown = items[:limit] if limit else items
    note = f"The {len(shown)} weakest of {len(items)} by F1." if limit and len(items) > limit else ""
    return Table(
        key=key,
        title=title,
        columns=["label", "precision", "recall", "f1", "support"],
        note=note,
        rows=[[name, r["precision"], r["recall"], r["f1"], r["support"]] for name, r in shown],
    )


def performance(ctx: Context) -> Section:
    """Always present: the numbers ``caveat evaluate`` reports first."""
    m = ctx.metrics
    if ctx.task is Task.TOKEN_CLASSIFICATION:
        return Section(
            key="performance",
            title="Entity scores",
            notes=[
                "Strict span matching (seqeval, IOB2): an entity counts only when its type and both boundaries are "
                "right."
            ],
            metrics=[
                metric("f1", "entity F1 (micro)", m["f1"]),
                metric("precision", "entity precision", m["precision"]),
                metric("recall", "entity recall", m["recall"]),
                metric("macro_f1", "macro F1 over types", m["macro_f1"]),
                metric(
                    "token_accuracy",
                    "token accuracy",
                    m["token_accuracy"],
                    "share of words with the right tag, O included",
                ),
                metric("n", "sentences", m["n"]),
                metric("n_entities", "gold entities", m["n_entities"]),
            ],
            tables=[_per_label("per_type", "Per entity type", m["per_type"])],
        )
    return Section(
        key="performance",
        title="Accuracy",
        metrics=[
            metric("accuracy", "accuracy", m["accuracy"]),
            metric("macro_f1", "macro F1", m["macro_f1"], "unweighted mean F1 over classes"),
            metric("weighted_f1", "weighted F1", m["weighted_f1"]),
            metric("nll", "NLL", m["nll"], "mean negative log-likelihood of the true label (raw model)"),
            metric("n", "examples", m["n"]),
        ],
        tables=[_per_label("per_class", "Per class", m["per_class"], limit=MAX_CLASSES)],
    )
