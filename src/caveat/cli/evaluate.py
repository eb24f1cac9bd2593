"""``caveat evaluate``: metrics of a run on a split or a file (JSON, or a table for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from caveat.cli.common import TABLE_WIDTH, emit, fit_table, print_tables, table_console, wrap_name
from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory written by caveat train.")],
    data: Annotated[
        Optional[str],
        typer.Option(
            help="Split name (train, validation, calibration, test) or a labelled file; default: test, or "
            "validation when the run has no test split."
        ),
    ] = None,
    ood: Annotated[
        list[str], typer.Option(help="Out-of-scope set: a data.ood name of the run or a file of texts (repeatable).")
    ] = [],
    methods: Annotated[
        Optional[str],
        typer.Option(
            help=(
                "Uncertainty methods side by side, e.g. least_confidence,energy,mahalanobis,knn,laplace,mc_dropout,"
                "ensemble, ensemble_knn (calibrated ensembles), and laplace_lora for LoRA runs (default: those needing "
                "no extra pass). The old name msp "
                "(of least_confidence) still works until the next release."
            )
        ),
    ] = None,
    mc_samples: Annotated[
        int,
        typer.Option(
            help="Also evaluate MC dropout with this many samples (0: off; --methods mc_dropout alone uses 10)."
        ),
    ] = 0,
    mc_top_layers: Annotated[
        Optional[int], typer.Option(help="Efficient MC dropout: sample only the top L layers and the head.")
    ] = None,
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Also evaluate the run's deep-ensemble members (train --ensemble N).")
    ] = False,
    shift: Annotated[
        list[str],
        typer.Option(
            help=(
                "Shifted labelled set NAME=FILE, any format the run reads, e.g. cr=custrev.all (repeatable); figures "
                "under shift.NAME."
            )
        ),
    ] = [],
    adversarial: Annotated[
        list[str],
        typer.Option(
            help=(
                "Human-made adversarial labelled set NAME=FILE, any format the run reads (repeatable); scored like a "
                "shifted set, figures under adversarial.NAME (accuracy, calibrated ECE, share answered and its error)."
            )
        ),
    ] = [],
    explain_faithfulness: Annotated[
        bool,
        typer.Option(
            "--explain-faithfulness",
            help=(
                "Also measure how faithful, stable and costly each explanation method is (text runs); figures under "
                "explanations."
            ),
        ),
    ] = False,
    explain_methods: Annotated[
        str, typer.Option(help="Methods for --explain-faithfulness, comma-separated.")
    ] = "ig,shap,lime,occlusion",
    max_examples: Annotated[
        int, typer.Option(help="Texts explained by --explain-faithfulness (a seeded sample).")
    ] = 200,
    format: Annotated[str, typer.Option("--format", help="json or table.")] = "json",
    batch_size: Annotated[Optional[int], typer.Option(help="Inference batch size.")] = None,
) -> None:
    """Score a run; also merged into RUN/metrics.json. Keys are listed in docs/metrics.md."""
    from caveat.evaluation.run import evaluate_run

    if format not in ("json", "table"):
        raise ConfigError(f"--format must be json or table. Got {format!r}.")
    if data is None:
        from caveat.data.resolve import default_split
        from caveat.models.rundir import open_run

        data = default_split(open_run(run))
        if data != "test":
            typer.echo(f"note: this run has no test split; evaluating the {data} split", err=True)
    metrics = evaluate_run(
        run,
        data,
        ood=ood,
        methods=methods,
        mc_samples=mc_samples,
        mc_top_layers=mc_top_layers,
        ensemble=ensemble,
        batch_size=batch_size,
        shift=shift,
        adversarial=adversarial,
        explain=(
            {"methods": [m.strip() for m in explain_methods.split(",") if m.strip()], "max_examples": max_examples}
            if explain_faithfulness
            else None
        ),
    )
    if format == "json":
        emit(metrics)
    else:
        print_table(metrics, level=_set_level(run, metrics), side_by_side=True)


def _set_level(run: Path, metrics: dict) -> float | None:
    """The prediction sets' level (1 - alpha) from the run's calibration, when the metrics do not hold it."""
    from caveat.models.describe import describe_run

    if "conformal" not in metrics or "level" in metrics["conformal"]:
        return None
    sets = (describe_run(run)["calibration"] or {}).get("sets")
    return sets["level"] if sets else None


def print_table(
    metrics: dict, *, level: float | None = None, side_by_side: bool = True, width: int | None = None
) -> None:
    """``caveat evaluate``'s figures as tables for people, on stdout.

    The task figures with calibration (ECE raw → calibrated, temperature), prediction sets and abstention; OOD
    detection per out-of-scope set and score; the policy's decisions per set; each shifted set; each adversarial
    set; the methods side
    by side (``side_by_side``); MC dropout and the ensemble; the weakest classes. A section whose keys are absent
    is left out. ``level``: the prediction sets' level when ``metrics["conformal"]`` does not hold it. ``width``:
    the console's columns (default: the terminal's, 80 to 100); names wrap at ``/`` and ``_``, never mid-word.
    """
    console = table_console(width)
    heading = [
        wrap_name(f"{metrics['task']} on {metrics['data']}", console.width),
        wrap_name(f"source: {metrics['source']}", console.width),
    ]
    sections = [
        _summary(metrics, level),
        metrics.get("ood") and fit_table(console, lambda w: _ood(metrics, w)),
        metrics.get("decisions") and fit_table(console, lambda w: _decisions(metrics, w)),
        metrics.get("shift")
        and fit_table(console, lambda w: _shift(metrics, w, detection=True), lambda w: _shift(metrics, w)),
        metrics.get("adversarial")
        and fit_table(
            console,
            lambda w: _shift(metrics, w, detection=True, key="adversarial"),
            lambda w: _shift(metrics, w, key="adversarial"),
        ),
        side_by_side and metrics.get("methods") and fit_table(console, lambda w: _methods(metrics, w), widest=20),
        *(metrics.get(k) and fit_table(console, lambda w, k=k: _sampled(metrics, k, w)) for k in SAMPLED),
        (metrics.get("per_type") or metrics.get("per_class")) and fit_table(console, lambda w: _per_label(metrics, w)),
    ]
    print_tables(console, "\n".join(heading), *filter(None, sections))


SAMPLED = {"mc_dropout": "MC dropout", "ensemble": "deep ensemble"}
WEAKEST = 20  # classes listed by the per-class table, lowest F1 first


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _table(title: str, *columns: str, caption: str | None = None):
    """A borderless table, first column left and the others right. Callers break multi-word headers onto lines
    so that a header is no wider than its figures; the table is at least as wide as its title's lines."""
    from rich import box
    from rich.table import Table

    title = wrap_name(title, TABLE_WIDTH[0])
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
        caption_justify="left",
        min_width=max(map(len, title.splitlines())),  # else rich wraps the title to a narrow table's width
    )
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def _raw_calibrated(label: str, raw: float | None, calibrated: dict, key: str) -> tuple[str, str]:
    if key in calibrated:
        return f"{label}, raw → calibrated", f"{_num(raw)} → {_num(calibrated[key])}"
    return label, _num(raw)


def _summary(metrics: dict, level: float | None):
    """Task figures, then calibration, prediction sets and abstention: one section each, those present."""
    cal = metrics.get("calibrated", {})
    if metrics["task"] == "token-classification":
        aggregate = cal.get("aggregate", "product")
        task = [("span F1", "f1"), ("span precision", "precision"), ("span recall", "recall")]
        task += [("macro F1 over types", "macro_f1"), ("token accuracy", "token_accuracy")]
        counts = [("sentences", "n"), ("entities", "n_entities")]
        raw = metrics.get("spans", {}).get(aggregate, {})
        calibration = [
            _raw_calibrated(f"span ECE ({aggregate})", raw["ece"], cal, "span_ece") if "ece" in raw else None,
            _raw_calibrated(f"span AURC ({aggregate})", raw["aurc"], cal, "span_aurc") if "aurc" in raw else None,
        ]
    else:
        task = [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("weighted F1", "weighted_f1")]
        counts = [("inputs", "n")]
        calibration = [
            _raw_calibrated(label, metrics[key], cal, key) if key in metrics else None
            for label, key in (("ECE", "ece"), ("NLL", "nll"), ("Brier", "brier"), ("AURC", "aurc"))
        ]
    rows = [[(label, _num(metrics[key])) for label, key in task if key in metrics]]
    rows[0] += [(label, str(metrics[key])) for label, key in counts if key in metrics]
    temperature = [("temperature", _num(cal["temperature"], 3))] if "temperature" in cal else []
    noise = (cal if "ece_noise" in cal else metrics).get("ece_noise")
    if noise:  # a measured ECE below this is no evidence of miscalibration
        temperature.append((f"ECE of a calibrated model, {_percent(noise['level'])} bound", _num(noise["upper"])))
    rows.append([row for row in calibration if row] + temperature)
    sets = metrics.get("conformal", {})
    level = sets.get("level", level)
    if sets:
        where = f" (level {_percent(level)})" if level is not None else ""
        rows.append(
            [(f"set coverage{where}", _num(sets.get("coverage"))), ("mean set size", _num(sets.get("set_size"), 2))]
        )
    abstention = metrics.get("abstention", {})
    if abstention:
        rows.append(
            [
                ("abstention risk", _num(abstention.get("risk"))),
                ("abstention coverage", _num(abstention.get("coverage"))),
                ("guarantee", abstention.get("guarantee") or "—"),
                ("policy score", abstention.get("score") or "—"),
            ]
        )
    table = _table("figures", "figure", "value")
    for section in filter(None, rows):
        for i, (label, value) in enumerate(section):
            table.add_row(label, value, end_section=i == len(section) - 1)
    return table


def _ood(metrics: dict, width: int):
    policy = metrics.get("abstention", {}).get("score")
    table = _table("out-of-scope detection (out-of-scope inputs positive)", "set", "score", "AUROC", "FPR at\n95% TPR")
    for name, scores in metrics["ood"].items():
        for i, (score, row) in enumerate(scores.items()):
            table.add_row(
                wrap_name(name, width) if i == 0 else "",
                f"{score} (policy)" if score == policy else score,
                _num(row.get("auroc")),
                _num(row.get("fpr95")),
                end_section=i == len(scores) - 1,
            )
    return table


def _decisions(metrics: dict, width: int):
    caption = "answered error and share: of the in-scope inputs; for an out-of-scope set, of in-scope + that set"
    columns = ("set", "answer", "abstain", "route", "OOS\nrecall", "answered\nerror", "answered\nshare")
    table = _table("decisions of the calibrated policy", *columns, caption=caption)
    abstention = metrics.get("abstention", {})
    for name, row in metrics["decisions"].items():
        if name == "in_scope":
            name, extra = "in-scope", ("—", _num(abstention.get("risk")), _num(abstention.get("coverage")))
        else:
            extra = tuple(_num(row.get(k)) for k in ("oos_recall", "combined_answered_error", "combined_coverage"))
        table.add_row(wrap_name(name, width), *(str(row.get(a, 0)) for a in ("answer", "abstain", "route")), *extra)
    return table


def _shift(metrics: dict, width: int, *, detection: bool = False, key: str = "shift"):
    """One row per set, the in-domain split first: accuracy, ECE raw → calibrated, set coverage, abstention
    risk and coverage, and with ``detection`` the AUROC of the policy's score for telling the set from in-domain.
    ``key``: ``shift`` (shifted sets) or ``adversarial`` (human-made adversarial sets, the same figures)."""
    rows = [(metrics["data"], metrics), *metrics[key].items()]
    calibrated = any("calibrated" in r for _, r in rows)
    sets = any("conformal" in r for _, r in rows)
    abstention = any("abstention" in r for _, r in rows)
    score = metrics.get("abstention", {}).get("score", "least_confidence")
    columns = ["set", "n", "accuracy", "ECE raw\n→ calibrated" if calibrated else "ECE"]
    columns += ["set\ncoverage"] * sets + ["abstention\nrisk", "abstention\ncoverage"] * abstention
    columns += [f"{'shift' if key == 'shift' else 'detection'}\nAUROC\n({score})"] * detection
    title = "distribution shift" if key == "shift" else "adversarial sets"
    table = _table(f"{title} (in-domain: {metrics['data']})", *columns)
    for i, (name, row) in enumerate(rows):
        ece = _num(row.get("ece"))
        cells = [str(row.get("n", "—")), _num(row.get("accuracy"))]
        cells.append(f"{ece} → {_num(row.get('calibrated', {}).get('ece'))}" if calibrated else ece)
        cells += [_num(row.get("conformal", {}).get("coverage"))] * sets
        cells += [_num(row.get("abstention", {}).get(k)) for k in ("risk", "coverage")] * abstention
        if detection:  # shifted vs in-domain inputs, so none for the in-domain row
            ood = row.get("ood", {})
            cells.append(_num(ood.get(score, ood.get("least_confidence", {})).get("auroc")) if i else "—")
        table.add_row(wrap_name(name, width), *cells)
    return table


def _methods(metrics: dict, width: int):
    """Each method's calibration, selective and OOD figures and its cost; the score it ranks by when that is not
    its name."""
    methods = metrics["methods"]
    sets = list(dict.fromkeys(k for row in methods.values() for k in row.get("ood_auroc", {})))
    ood = (f"OOD AUROC\n{wrap_name(k, max(width, 9))}" for k in sets)
    table = _table(
        "uncertainty methods side by side", "method", "ECE", "AURC", "error\nAUROC", *ood, "cost ×\none pass"
    )
    for name, row in methods.items():
        score = row.get("score", name)
        label = wrap_name(name, width) + ("" if score == name else "\n" + wrap_name(f"({score})", width))
        cells = [row.get(k) for k in ("ece", "aurc", "error_auroc")] + [row.get("ood_auroc", {}).get(k) for k in sets]
        cost = row.get("cost_ratio")
        table.add_row(label, *map(_num, cells), "—" if cost is None else f"{cost:.2f}×")
    return table


def _sampled(metrics: dict, key: str, width: int):
    """MC dropout or the deep ensemble: the mean probabilities' figures, the cost, OOD AUROC per set and score."""
    row = metrics[key]
    if key == "ensemble":
        what = f"{row.get('members', row.get('samples'))} members"
    else:
        what = f"{row.get('samples')} samples" + (f", top {row['top_layers']} layers" if row.get("top_layers") else "")
    table = _table(f"{SAMPLED[key]} ({what})", "figure", "value")
    for label, k in (
        ("accuracy of the mean", "accuracy"),
        ("macro-F1 of the mean", "macro_f1"),
        ("official macro-F1 of the mean", "relation_macro_f1"),
        ("ECE", "ece"),
        ("NLL", "nll"),
        ("Brier", "brier"),
        ("AURC", "aurc"),
        ("error AUROC", "error_auroc"),
    ):
        if k in row:
            table.add_row(label, _num(row[k]))
    if row.get("cost_ratio") is not None:
        table.add_row("cost × one pass", f"{row['cost_ratio']:.2f}×")
    for name, scores in row.get("ood", {}).items():
        for score, r in scores.items():
            table.add_row(wrap_name(f"OOD AUROC {name} ({score})", width + 8), _num(r.get("auroc")))
    return table


def _per_label(metrics: dict, width: int):
    per = metrics.get("per_type") or metrics["per_class"]
    if "per_type" in metrics:
        title, rows = "per entity type", list(per.items())
    else:
        rows = sorted(per.items(), key=lambda kv: kv[1]["f1"])[:WEAKEST]
        title = "per class" if len(per) <= WEAKEST else f"per class ({WEAKEST} of {len(per)}, lowest F1 first)"
    table = _table(title, "label", "precision", "recall", "F1", "support")
    for name, row in rows:
        figures = (_num(row[k], 3) for k in ("precision", "recall", "f1"))
        table.add_row(wrap_name(name, width), *figures, str(row["support"]))
    return table
