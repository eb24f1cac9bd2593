"""Task metrics as pure functions. Keys are stable and documented in docs/metrics.md."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from caveat.models.tags import decode_tags
from caveat.types import Split, Task


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """``accuracy``, ``macro_f1``, ``weighted_f1``, ``n`` and ``per_class`` (precision, recall, f1, support).

    Macro-F1 averages over the classes that occur in ``y_true`` or ``y_pred``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.union1d(y_true, y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    _, _, macro, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    _, _, weighted, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="weighted", zero_division=0
    )
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(macro),
        "weighted_f1": float(weighted),
        "n": int(len(y_true)),
        "per_class": {
            labels[c]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(present)
        },
    }


_DIRECTION = re.compile(r"\((e[12]),\s*(e[12])\)$")


def relation_type(label: str) -> str:
    """The relation of a directed label: ``Cause-Effect(e2,e1)`` -> ``Cause-Effect``; other labels as they are."""
    return _DIRECTION.sub("", label)


def relation_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], *, other: str = "Other"
) -> dict:
    """The official SemEval-2010 Task 8 score (Hendrickx et al. 2010, "SemEval-2010 Task 8: Multi-Way
    Classification of Semantic Relations between Pairs of Nominals"): the scorer's "(9+1)-way evaluation with
    directionality taken into account".

    Per relation type (the label without its ``(e1,e2)`` / ``(e2,e1)`` direction; ``other`` is not a type),
    a prediction is correct when its label equals the gold one (type and direction); precision divides the
    correct ones by every prediction of the type (either direction, so a direction error counts against it),
    recall by every gold example of the type. ``relation_macro_f1`` (the official score) is the mean of the
    types' F1 over all relation types among ``labels``, ``other`` excluded; ``per_relation`` gives each type's
    ``precision``, ``recall``, ``f1``, ``support`` and ``wrong_direction`` (gold type predicted, direction wrong).
    """
    names = [relation_type(lab) for lab in labels]
    gold_type = np.asarray([names[i] for i in y_true], dtype=object)
    pred_type = np.asarray([names[i] for i in y_pred], dtype=object)
    exact = np.asarray(y_true) == np.asarray(y_pred)
    table = {}
    for kind in sorted(set(names) - {other}):
        gold, pred = gold_type == kind, pred_type == kind
        correct = int((exact & gold).sum())
        precision = correct / pred.sum() if pred.sum() else 0.0
        recall = correct / gold.sum() if gold.sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[kind] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(gold.sum()),
            "wrong_direction": int((gold & pred & ~exact).sum()),
        }
    mean = {k: float(np.mean([t[k] for t in table.values()])) if table else 0.0 for k in ("precision", "recall", "f1")}
    return {
        "relation_macro_f1": mean["f1"],
        "relation_macro_precision": mean["precision"],
        "relation_macro_recall": mean["recall"],
        "per_relation": table,
    }


def relation_decisions(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    answered: Sequence[bool],
    labels: Sequence[str],
    *,
    other: str = "Other",
) -> dict:
    """A calibrated relation policy's decisions split the relation way: what it withholds (abstain or route) of
    "no relation" (gold ``other``) inputs and of real relations, and its answered errors split into confusions of
    ``other`` with a relation vs errors between two real relations (``wrong_direction``: the same relation,
    reversed). Each count is of inputs; ``answered_error_*`` are error rates among the answered inputs of that
    kind (None when there are none)."""
    y, p, answered = np.asarray(y_true), np.asarray(y_pred), np.asarray(answered, dtype=bool)
    is_other = np.array([lab == other for lab in labels])
    kinds = [relation_type(lab) for lab in labels]
    wrong = y != p
    with_other = wrong & (is_other[y] | is_other[p])
    between = wrong & ~is_other[y] & ~is_other[p]
    reversed_ = between & np.array([kinds[a] == kinds[b] for a, b in zip(y, p)], dtype=bool)
    held = ~answered

    def rate(mask: np.ndarray) -> float | None:
        return float(wrong[mask].mean()) if mask.any() else None

    return {
        "n": int(len(y)),
        "withheld_no_relation": int((held & is_other[y]).sum()),
        "withheld_relation": int((held & ~is_other[y]).sum()),
        "withheld_would_be_wrong": int((held & wrong).sum()),
        "answered_errors_other_vs_relation": int((answered & with_other).sum()),
        "answered_errors_between_relations": int((answered & between).sum()),
        "answered_errors_wrong_direction": int((answered & reversed_).sum()),
        "answered_error_no_relation": rate(answered & is_other[y]),
        "answered_error_relation": rate(answered & ~is_other[y]),
    }


def span_metrics(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict:
    """Entity-level ``precision``, ``recall``, ``f1`` (micro), ``macro_f1`` over types, ``token_accuracy``,
    ``n`` (sentences), ``n_entities`` and ``per_type``; seqeval in strict mode with the IOB2 scheme."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(true_tags, pred_tags, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    types = {k: v for k, v in report.items() if k not in ("micro avg", "macro avg", "weighted avg")}
    micro = report["micro avg"]
    flat_true = [t for s in true_tags for t in s]
    flat_pred = [t for s in pred_tags for t in s]
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "token_accuracy": float(np.mean([a == b for a, b in zip(flat_true, flat_pred)])) if flat_true else 0.0,
        "n": len(true_tags),
        "n_entities": int(micro["support"]),
        "per_type": {
            k: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for k, v in sorted(types.items())
        },
    }


def nll(probs: np.ndarray, y_true: Sequence[int]) -> float:
    """Mean negative log-likelihood of the true class; probs (N, C)."""
    p = probs[np.arange(len(y_true)), np.asarray(y_true)]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def metrics_for(
    task: Task,
    split: Split,
    labels: list[str],
    *,
    logits: np.ndarray | None = None,
    word_logits: list[np.ndarray] | None = None,
) -> dict:
    """Task metrics of predictions against a labelled split: (N, C) logits, or per-sentence (W, C) logits."""
    if Task(task) is Task.TOKEN_CLASSIFICATION:
        pred = decode_tags(word_logits, labels)
        return span_metrics([list(ex.tags) for ex in split.examples], pred)
    index = {lab: i for i, lab in enumerate(labels)}
    y = [index[ex.label] for ex in split.examples]
    out = classification_metrics(y, logits.argmax(-1), labels)
    if Task(task) is Task.RELATION_CLASSIFICATION:
        out.update(relation_metrics(y, logits.argmax(-1), labels))
    z = logits - logits.max(-1, keepdims=True)
    out["nll"] = nll(np.exp(z) / np.exp(z).sum(-1, keepdims=True), y)
    return out
