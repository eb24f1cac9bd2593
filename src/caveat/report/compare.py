"""The page of ``caveat compare``: runs side by side, as a :class:`Report` built from the comparison
alone (``compare_runs``' result; no model pass), rendered by the same template as a run's report.

Sections: the table with figures of accuracy and calibration per run, the change of each run against
a baseline run, the attacks (with successful adversarial examples), held-out attacks (``--held-out-attacks``:
which attacks each run's training saw, and its gain on the others), the shifted sets, the human-made adversarial
sets, and training cost.
Text-classification runs show accuracy; NER runs span F1 (seqeval, entity level) and span ECE.
"""

from __future__ import annotations

import time

from caveat._version import __version__
from caveat.errors import ConfigError
from caveat.report.compare_robust import adversarial_section, held_out_section
from caveat.report.schema import MeanGroup, MeansFigure, Report, Section, Table
from caveat.report.sections.attacks import example_cells
from caveat.report.sections.base import num
from caveat.types import Task

EXAMPLES_PER_RUN = 2  # successful adversarial examples shown per run and attack


class _Keys:
    """Where a row keeps its figures, by task: text rows hold accuracy / ECE, NER rows span F1 / span ECE."""

    def __init__(self, ner: bool):
        self.ner = ner
        self.score, self.ece, self.cal_ece = (
            ("span_f1", "span_ece", "calibrated_span_ece") if ner else ("accuracy", "ece", "calibrated_ece")
        )
        self.score_label, self.ece_label = ("span F1", "span ECE") if ner else ("accuracy", "ECE")
        self.attacked = "after_attack_span_f1" if ner else "after_attack_accuracy"


def _delta(a, b):
    return None if a is None or b is None else a - b


def _baseline_row(rows: list[dict], baseline: str | None) -> dict:
    """The baseline's row: the run named ``baseline`` (its table name), else the first."""
    for r in rows:
        if r["run"] == baseline:
            return r
    if baseline is not None:
        raise ConfigError(
            f"baseline {baseline!r} is not one of the compared runs ({', '.join(r['run'] for r in rows)})"
        )
    return rows[0]


def _overview(result: dict, k: _Keys) -> Section:
    rows, runs = result["rows"], [r["run"] for r in result["rows"]]
    score = [MeanGroup(name=f"clean {k.score_label}", means=[num(r[k.score]) for r in rows])]
    score += [
        MeanGroup(name=f"after {a}", means=[num(r["attack"][a][k.attacked]) for r in rows]) for a in result["attacks"]
    ]
    score += [
        MeanGroup(name=f"{name} (shifted)", means=[num(r["shift"][name][k.score]) for r in rows])
        for name in result["shifts"]
    ]
    ece = [MeanGroup(name=f"{result['data']} (in-domain)", means=[num(r[k.ece]) for r in rows])]
    ece += [
        MeanGroup(name=f"{name} (shifted)", means=[num(r["shift"][name][k.ece]) for r in rows])
        for name in result["shifts"]
    ]
    figures = [
        MeansFigure(
            key="scores",
            title=f"{k.score_label}: "
            + ", ".join(
                ["clean", *(["attacked"] if result["attacks"] else []), *(["shifted"] if result["shifts"] else [])]
            ),
            xlabel="run",
            ylabel=k.score_label,
            categories=runs,
            groups=score,
            note=(
                f"Clean: all of {result['data']!r}; after an attack: its first examples (table notes); shifted: each "
                "shifted set."
            ),
        ),
        MeansFigure(
            key="ece",
            title=f"{k.ece_label} (raw model), in-domain and shifted",
            xlabel="run",
            ylabel=k.ece_label,
            categories=runs,
            groups=ece,
            note="Lower is better calibrated.",
        ),
    ]
    notes = [
        n for n in result["notes"] if not n.startswith("seconds per step")
    ]  # the cost note goes to the cost section
    return Section(
        key="compare",
        title="Runs compared",
        notes=notes,
        figures=figures,
        tables=[
            Table(
                key="compare",
                title=f"Runs on {result['data']}",
                columns=result["columns"],
                rows=[[num(c) for c in row] for row in result["table"]],
            )
        ],
    )


def _against(result: dict, k: _Keys, base: dict) -> Section | None:
    """Each other run minus the baseline, in points (score and ECE) and as a cost ratio."""
    others = [r for r in result["rows"] if r is not base]
    if not others:
        return None
    table = Table(
        key="baseline",
        title="Change against the baseline",
        columns=[
            "run",
            "recipe",
            f"Δ {k.score_label}",
            f"Δ {k.ece_label}",
            *(f"Δ after {a}" for a in result["attacks"]),
        ],
        rows=[],
        note="Differences of fractions (0.05 = 5 points); cost as a ratio of seconds per training step.",
    )
    for name in result["shifts"]:
        table.columns += [f"Δ {name} {k.score_label}", f"Δ {name} {k.ece_label}"]
    table.columns.append("s/step ÷ baseline")
    for r in others:
        cells = [r["run"], r["recipe"], _delta(r[k.score], base[k.score]), _delta(r[k.ece], base[k.ece])]
        cells += [_delta(r["attack"][a][k.attacked], base["attack"][a][k.attacked]) for a in result["attacks"]]
        for name in result["shifts"]:
            s, b = r["shift"][name], base["shift"][name]
            cells += [_delta(s[k.score], b[k.score]), _delta(s[k.ece], b[k.ece])]
        mine, theirs = r["training"]["seconds_per_step"], base["training"]["seconds_per_step"]
        cells.append(mine / theirs if mine is not None and theirs else None)
        table.rows.append([num(c) for c in cells])
    records = table.records()
    drawn = [
        f"Δ {k.score_label}",
        *(f"Δ after {a}" for a in result["attacks"]),
        f"Δ {k.ece_label}",
        *(f"Δ {name} {k.ece_label}" for name in result["shifts"]),
    ]
    figure = MeansFigure(
        key="baseline",
        title=f"Change against {base['run']}",
        xlabel="run",
        ylabel="difference",
        categories=[r["run"] for r in others],
        groups=[MeanGroup(name=column, means=[rec[column] for rec in records]) for column in drawn],
        note=f"{k.score_label} up is better; {k.ece_label} down is better.",
    )
    return Section(
        key="baseline",
        title=f"Against the baseline ({base['run']})",
        notes=[
            f"Each run minus `{base['run']}` ({base['recipe']}): a positive Δ {k.score_label} is a gain, a negative Δ "
            f"{k.ece_label} is better calibration. `caveat compare --baseline RUN` picks another baseline."
        ],
        figures=[figure],
        tables=[table],
    )


def _attacks(result: dict, k: _Keys) -> Section | None:
    if not result["attacks"]:
        return None
    if k.ner:
        columns = [
            "attack",
            "run",
            "sentences",
            "clean span F1",
            "after-attack span F1",
            "clean sentence accuracy",
            "after-attack sentence accuracy",
            "span errors (clean → after)",
            "success rate",
            "mean queries",
            "words changed",
            "similarity",
            "reused",
        ]
    else:
        columns = [
            "attack",
            "run",
            "examples",
            "clean accuracy",
            "after-attack accuracy",
            "success rate",
            "mean queries",
            "words changed",
            "similarity",
            "reused",
        ]
    rows, examples = [], []
    for a in result["attacks"]:
        for r in result["rows"]:
            f = r["attack"][a]
            cells = [a, r["run"], f["n"]]
            if k.ner:
                errors = (
                    f"{f['clean_span_errors']} → {f['after_attack_span_errors']}"
                    if f.get("clean_span_errors") is not None
                    else None
                )
                cells += [
                    f["clean_span_f1"],
                    f["after_attack_span_f1"],
                    f["clean_accuracy"],
                    f["after_attack_accuracy"],
                    errors,
                ]
            else:
                cells += [f["clean_accuracy"], f["after_attack_accuracy"]]
            cells += [
                f["success_rate"],
                f["mean_queries"],
                f["mean_changed_fraction"],
                f["mean_similarity"],
                f.get("reused"),
            ]
            rows.append([num(c) for c in cells])
            for ex in f.get("examples", [])[:EXAMPLES_PER_RUN]:
                examples.append([a, r["run"], *example_cells(ex)])
    s = result["settings"]
    return Section(
        key="attacks",
        title="Adversarial attacks",
        notes=[
            f"Constraints: at most {s['max_change']:.0%} of words changed, sentence similarity ≥ "
            f"{s['min_similarity']:g}, {s['max_candidates']} substitutes per word, seed {s['seed']}. Only examples a "
            "run gets right are attacked. reused: read from the run's metrics.json (the same settings), not attacked "
            "again. Read the examples before quoting after-attack figures: word substitutes can change the meaning "
            "(docs/attacks.md)."
        ],
        tables=[
            Table(
                key="attacks",
                title="Figures per attack and run",
                columns=columns,
                rows=rows,
                note="words changed and similarity: means over the successful attacks.",
            ),
            Table(
                key="adversarial_examples",
                title="Successful adversarial examples",
                rows=examples,
                columns=[
                    "attack",
                    "run",
                    "original",
                    "adversarial",
                    "true label",
                    "predicted (probability)",
                    "similarity",
                ],
                note="Changed words in [brackets]."
                if examples
                else "No attack succeeded, or the runs' saved attacks hold no examples.",
            ),
        ],
    )


def _shift(result: dict, k: _Keys) -> Section | None:
    if not result["shifts"]:
        return None
    rows = result["rows"]
    calibrated = any(r["calibrated"] for r in rows)
    columns = [
        "set",
        "run",
        "examples",
        k.score_label,
        f"Δ {k.score_label} (vs in-domain)",
        k.ece_label,
        *([f"{k.ece_label} (calibrated)"] if calibrated else []),
        *([] if k.ner else ["least-confidence AUROC"]),
    ]
    table = []
    for name, path in result["shifts"].items():
        for r in rows:
            s = r["shift"][name]
            table.append(
                [
                    num(c)
                    for c in [
                        f"{name} ({path})",
                        r["run"],
                        s["n"],
                        s[k.score],
                        _delta(s[k.score], r[k.score]),
                        s[k.ece],
                        *([s[k.cal_ece]] if calibrated else []),
                        # compare.json files written before the rename say msp_auroc
                        *([] if k.ner else [s.get("least_confidence_auroc", s.get("msp_auroc"))]),
                    ]
                ]
            )
    notes = ["Each run on each shifted set, against its own in-domain figure."]
    if not k.ner:
        notes.append(
            "least-confidence AUROC: the chance that a shifted input gets a lower top probability (a higher "
            "least_confidence = 1 - top probability) than an in-domain one (0.5: the confidence does not see the "
            "shift; higher is better)."
        )
    return Section(
        key="shift",
        title="Distribution shift",
        notes=notes,
        tables=[Table(key="shift", title="Shifted sets", columns=columns, rows=table)],
    )


def _cost(result: dict, base: dict) -> Section:
    rows = [
        [
            r["run"],
            r["recipe"],
            num(r["training"]["seconds"]),
            r["training"]["steps"],
            r["training"]["processes"],
            num(r["training"]["seconds_per_step"]),
        ]
        for r in result["rows"]
    ]
    per_step = [r["training"]["seconds_per_step"] for r in result["rows"]]
    figures = []
    if any(v is not None for v in per_step):
        figures.append(
            MeansFigure(
                key="cost",
                title="Training cost",
                xlabel="run",
                ylabel="seconds per step",
                categories=[r["run"] for r in result["rows"]],
                baseline=base["run"],
                groups=[MeanGroup(name="s/step", means=[num(v) for v in per_step])],
            )
        )
    notes = [n for n in result["notes"] if n.startswith("seconds per step")]
    return Section(
        key="cost",
        title="Training cost",
        notes=notes,
        figures=figures,
        tables=[
            Table(
                key="cost",
                title="Training",
                columns=["run", "recipe", "seconds", "steps", "processes", "s/step"],
                rows=rows,
            )
        ],
    )


def compare_report(result: dict) -> Report:
    """The comparison page of ``result`` (``compare_runs``' return value, or ``compare.json`` read back);
    the others are measured against ``result["baseline"]`` (the first run when absent)."""

    rows = result["rows"]
    if not rows:
        raise ConfigError("the comparison holds no runs; run caveat compare with at least one run directory")
    ner = result.get("task") == Task.TOKEN_CLASSIFICATION.value
    k, base = _Keys(ner), _baseline_row(rows, result.get("baseline"))
    sections = [
        _overview(result, k),
        _against(result, k, base),
        _attacks(result, k),
        held_out_section(result, base, score_label=k.score_label, attacked=k.attacked),
        _shift(result, k),
        adversarial_section(result),
        _cost(result, base),
    ]
    n = rows[0]["n"]
    return Report(
        title=f"caveat compare: {', '.join(r['run'] for r in rows)}",
        run=", ".join(r["path"] for r in rows),
        runs=[r["path"] for r in rows],
        task=result.get("task", Task.TEXT_CLASSIFICATION.value),
        data=result["data"],
        source=result["data"],
        n=n,
        calibrated=all(r["calibrated"] for r in rows),
        created=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        versions={"caveat": __version__},
        sections=[s for s in sections if s is not None],
    )
