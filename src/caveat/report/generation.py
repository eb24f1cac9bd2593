"""A self-contained HTML page for a ``generate-eval`` result: accuracy, each estimator's ability to
detect wrong answers, risk-coverage curves and example answers. Built as a :class:`~caveat.report.schema.Report`
so that it goes through the same template, plots and atomic writes as a run's report."""

from __future__ import annotations

from datetime import datetime, timezone

from caveat.report.schema import LineFigure, Report, Section, Series, Table
from caveat.report.sections.base import metric, num

EXAMPLES = 12


def _interval(ci) -> str | None:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else None


def generation_report(result: dict, *, data: str = "") -> Report:
    """The report of ``evaluate_generation``'s (or ``evaluate_summaries``') result (records included)."""
    if result.get("task") == "summarise":
        return _summary_report(result, data=data)
    est = result["estimators"]
    ranked = sorted(est, key=lambda e: -(est[e].get("auroc") or 0.0))
    sampling = result["sampling"]
    overview = Section(
        key="overview",
        title="Answers",
        notes=[
            (
                f"Model `{result['model']}`; greedy answer + {sampling['samples']} samples per question "
                f"(temperature {sampling['temperature']}, at most {sampling['max_new_tokens']} new tokens). "
                f"Errors are judged by `{result['rule']}`: {result['rule_description']}."
            )
        ]
        + ([result["warning"]] if "warning" in result else []),
        metrics=[metric("n", "questions", result["n"])]
        + [metric(f"accuracy.{rule}", f"greedy accuracy ({rule})", acc) for rule, acc in result["accuracy"].items()],
    )
    table = Table(
        key="estimators",
        title="Detecting wrong answers (higher AUROC and PRR, lower AURC = better)",
        columns=[
            "estimator",
            "AUROC",
            "95% interval",
            "PRR",
            "PRR 95% interval",
            "AURC",
            "accuracy at 50%",
            "accuracy at 80%",
            "s / question",
        ],
        rows=[
            [
                e,
                num(est[e].get("auroc")),
                _interval(est[e].get("auroc_ci")),
                num(est[e].get("prr")),
                _interval(est[e].get("prr_ci")),
                num(est[e].get("aurc")),
                num((est[e].get("accuracy_at") or {}).get("0.5")),
                num((est[e].get("accuracy_at") or {}).get("0.8")),
                num(est[e].get("seconds_per_question")),
            ]
            for e in ranked
        ],
        note="Intervals: percentile bootstrap over questions. s / question: what the estimator adds to sampling.",
    )
    curves = [
        Series(name=e, x=est[e]["risk_coverage"]["coverage"], y=est[e]["risk_coverage"]["risk"])
        for e in ranked[:6]
        if est[e].get("risk_coverage")
    ]
    figures = (
        [
            LineFigure(
                key="risk_coverage",
                title="Risk-coverage: error rate of the answered questions",
                xlabel="coverage (share answered, most certain first)",
                ylabel="error rate",
                series=curves,
                note="The six best estimators by AUROC.",
            )
        ]
        if curves
        else []
    )
    records = result.get("records") or []
    best = ranked[0] if ranked else None
    examples = Table(
        key="examples",
        title="Example answers",
        columns=["question", "answer", "references", "correct", f"{best} (uncertainty)" if best else "uncertainty"],
        rows=[
            [
                r["question"],
                r["answer"],
                "; ".join(r["references"]),
                r["correct"],
                num(r["scores"].get(best)) if best else None,
            ]
            for r in records[:EXAMPLES]
        ],
    )
    detection = Section(key="estimators", title="Uncertainty estimators", tables=[table], figures=figures)
    return Report(
        title=f"caveat generate-eval: {data or 'questions'}",
        run=result["model"],
        task="generation",
        data=data,
        source=data,
        n=result["n"],
        calibrated=False,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sections=[overview, detection, Section(key="examples", title="Examples", tables=[examples])],
    )


def _summary_report(result: dict, *, data: str) -> Report:
    """The report of ``evaluate_summaries``' result: quality, each estimator's PRR, quality-coverage curves."""
    est, primary = result["estimators"], result["quality"]
    ranked = sorted(est, key=lambda e: -(est[e].get("prr") or -2.0))
    others = [m for m in result["mean_quality"] if m != primary]
    sampling = result["sampling"]
    overview = Section(
        key="overview",
        title="Summaries",
        notes=[
            (
                f"Model `{result['model']}`; greedy summary + {sampling['samples']} samples per document "
                f"(temperature {sampling['temperature']}, at most {sampling['max_new_tokens']} new tokens). "
                f"Quality is `{primary}`: {result['quality_description']}."
            )
        ]
        + ([result["warning"]] if "warning" in result else []),
        metrics=[metric("n", "documents", result["n"])]
        + [metric(f"quality.{m}", f"mean quality ({m})", q) for m, q in result["mean_quality"].items()],
    )
    table = Table(
        key="estimators",
        title=f"Rejecting poor summaries (PRR against {primary}: 1 = oracle, 0 = random)",
        columns=["estimator", "PRR", "95% interval", f"{primary} at 50%", f"{primary} at 80%"]
        + [f"PRR ({m})" for m in others]
        + ["s / document"],
        rows=[
            [
                e,
                num(est[e].get("prr")),
                _interval(est[e].get("prr_ci")),
                num((est[e].get("quality_at") or {}).get("0.5")),
                num((est[e].get("quality_at") or {}).get("0.8")),
            ]
            + [num((est[e].get("by_quality") or {}).get(m, {}).get("prr")) for m in others]
            + [num(est[e].get("seconds_per_question"))]
            for e in ranked
        ],
        note="Interval: percentile bootstrap over documents. s / document: what the estimator adds to sampling.",
    )
    curves = [
        Series(name=e, x=est[e]["quality_coverage"]["coverage"], y=est[e]["quality_coverage"]["quality"])
        for e in ranked[:6]
        if est[e].get("quality_coverage")
    ]
    figures = (
        [
            LineFigure(
                key="quality_coverage",
                title=f"Quality-coverage: mean {primary} of the kept summaries",
                xlabel="coverage (share kept, most certain first)",
                ylabel=f"mean {primary}",
                series=curves,
                note="The six best estimators by PRR.",
            )
        ]
        if curves
        else []
    )
    best = ranked[0] if ranked else None
    examples = Table(
        key="examples",
        title="Example summaries",
        columns=["id", "summary", "reference", primary, f"{best} (uncertainty)" if best else "uncertainty"],
        rows=[
            [
                r["id"],
                r["answer"],
                "; ".join(r["references"]),
                num(r["quality"].get(primary)),
                num(r["scores"].get(best)) if best else None,
            ]
            for r in (result.get("records") or [])[:EXAMPLES]
        ],
    )
    return Report(
        title=f"caveat generate-eval --task summarise: {data or 'documents'}",
        run=result["model"],
        task="generation",
        data=data,
        source=data,
        n=result["n"],
        calibrated=False,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sections=[
            overview,
            Section(key="estimators", title="Uncertainty estimators", tables=[table], figures=figures),
            Section(key="examples", title="Examples", tables=[examples]),
        ],
    )
