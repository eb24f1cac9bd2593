"""Data and training summary: splits, labels, objective, and the training history."""

from __future__ import annotations

from caveat.models.backbone import backbone_name
from caveat.report.context import Context
from caveat.report.history import training_history
from caveat.report.schema import LineFigure, Section, Series, Table
from caveat.report.sections.base import metric, num


def data_and_training(ctx: Context) -> Section:
    """Always present: what the model was trained on and how training went."""
    cfg, training = ctx.run.config, ctx.run.info.get("training", {})
    name, history = training_history(ctx.run)
    metrics = [
        metric("task", "task", ctx.task.value),
        metric("labels", "labels", len(ctx.labels)),
        metric("backbone", "backbone", backbone_name(cfg.model.name_or_path)),  # 'default' said as the model it is
        metric("objective", "objective", cfg.train.objective),
        metric(
            "alpha",
            "alpha (robustness strength)",
            cfg.train.alpha,
            "loss = task loss + alpha x regulariser; unused by erm",
        ),
        metric("epochs", "epochs (configured)", cfg.train.epochs),
        metric("epochs_trained", "epochs trained", training.get("epochs")),
        metric("steps", "optimizer steps", training.get("steps")),
        metric("best_validation", f"best validation {name}", training.get("best_validation")),
        metric("best_step", "step kept", training.get("selected_step") or training.get("best_step")),
        metric("stopped_early", "stopped early", training.get("stopped_early")),
        metric("seconds", "training seconds", training.get("seconds")),
    ]
    splits = ctx.run.info.get("data", {}).get("splits", {})
    rows = [[split, info.get("n"), info.get("skipped"), info.get("source")] for split, info in splits.items()]
    if ctx.data not in splits:  # a file given to --data
        rows.append([f"{ctx.data} (evaluated)", len(ctx.split), ctx.split.skipped, ctx.split.source])
    rows += [[f"{name_} (out-of-scope)", n, None, name_] for name_, n in ctx.ood_sources.items()]
    tables = [
        Table(
            key="splits",
            title="Data",
            columns=["split", "examples", "skipped", "source"],
            rows=rows,
            note=f"This report evaluates {ctx.data!r} ({len(ctx.split)} examples).",
        )
    ]
    section = Section(key="overview", title="Data and training", metrics=metrics, tables=tables)
    if not history:
        section.notes.append("caveat.json holds no training history (the run was not trained by this caveat).")
        return section
    section.tables.append(
        Table(
            key="history",
            title="Training history",
            columns=["epoch", "step", "train loss", f"validation {name}"],
            rows=[[num(round(r["epoch"], 3)), r["step"], num(r["train_loss"]), num(r["validation"])] for r in history],
            note="train loss: mean of the losses logged since the previous validation (logs/train).",
        )
    )
    series = [
        Series(
            name=f"validation {name}",
            x=[r["epoch"] for r in history],
            y=[r["validation"] for r in history],
            axis="right",
        )
    ]
    logged = [r for r in history if r["train_loss"] is not None]
    if logged:
        series.insert(0, Series(name="train loss", x=[r["epoch"] for r in logged], y=[r["train_loss"] for r in logged]))
    else:
        section.notes.append("No training loss was logged under logs/train; the history shows validation only.")
    section.figures.append(
        LineFigure(
            key="history",
            title="Training history",
            xlabel="epoch",
            ylabel="train loss",
            ylabel_right=f"validation {name}",
            series=series,
        )
    )
    return section
