"""The validation metric that picks the kept model (``train.select_metric``).

Training scores the validation split at each evaluation; one of the figures it gets decides which weights
are kept (``train.select=best``), when early stopping runs out of patience, and what the history, the
trackers and ``caveat.json`` call ``best_validation``. ``auto`` takes each task's usual score: accuracy for
text classification, the official SemEval-2010 Task 8 score (``relation_macro_f1``: "Other" left out,
directions folded) for relation classification, entity F1 for NER. A loss such as ``nll`` is lower-is-better.

This module sits on the config's floor so that the config can check a name against the run's task.
"""

from __future__ import annotations

from dataclasses import dataclass

from caveat.errors import ConfigError
from caveat.types import Task

AUTO = "auto"

# The keys of ``evaluation.metrics.metrics_for`` a task's validation offers; the first is what ``auto`` picks.
SELECT_METRICS: dict[Task, tuple[str, ...]] = {
    Task.TEXT_CLASSIFICATION: ("accuracy", "macro_f1", "weighted_f1", "nll"),
    Task.RELATION_CLASSIFICATION: (
        "relation_macro_f1",
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "relation_macro_precision",
        "relation_macro_recall",
        "nll",
    ),
    Task.TOKEN_CLASSIFICATION: ("f1", "macro_f1", "precision", "recall", "token_accuracy"),
}
LOWER_IS_BETTER = frozenset({"nll"})


@dataclass(frozen=True)
class ValidationMetric:
    """A validation figure by name, with which way is better."""

    name: str
    higher_is_better: bool = True

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (None: nothing yet, so it does); a tie does not."""
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


def allowed_metrics(task: Task | str) -> tuple[str, ...]:
    """The names ``train.select_metric`` accepts for ``task``: ``auto`` and the task's validation figures."""
    return (AUTO, *SELECT_METRICS[Task(task)])


def validation_metric(task: Task | str, name: str = AUTO) -> ValidationMetric:
    """The metric ``train.select_metric=name`` means for a ``task`` run; a ConfigError names the allowed ones."""
    task = Task(task)
    offered = SELECT_METRICS[task]
    chosen = offered[0] if name == AUTO else name
    if chosen not in offered:
        raise ConfigError(
            f"train.select_metric={name!r} is not a validation metric of {task.value} runs; choose one of: "
            f"{AUTO} ({offered[0]}), {', '.join(offered)}"
        )
    return ValidationMetric(chosen, higher_is_better=chosen not in LOWER_IS_BETTER)


def stored_metric(training: dict, task: Task | str) -> str:
    """The name of the metric a stored training summary's ``best_validation`` is in: its ``validation_metric``,
    else (runs trained before ``train.select_metric``) the key of its history, else accuracy (text and
    relation classification) or f1 (NER), what those runs used."""
    if training.get("validation_metric"):
        return training["validation_metric"]
    for row in training.get("history", []):
        for key in row:
            if key.startswith("validation_") and key != "validation_n":
                return key.removeprefix("validation_")
    return "accuracy" if Task(task).classifies_texts else "f1"
