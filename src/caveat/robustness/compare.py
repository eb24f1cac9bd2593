"""``caveat compare``: one table across runs of one task, with training cost per step.

Text classification: clean accuracy and ECE, after-attack accuracy per attack, accuracy and ECE per
shifted set, and per human-made adversarial set accuracy, ECE and what the calibrated policy answers. With
``held_out_attacks``, each run's attacks are marked seen or held-out by the candidate sources its training drew
from, and its after-attack gain over the baseline is averaged apart over each kind (``held_out.py``).
NER (token classification): clean entity-level span F1 (seqeval) and span ECE, after-attack span F1 and
sentence accuracy per attack (context words perturbed only, ``robustness/ner.py``), span F1 and span ECE per
shifted set.

Nothing is re-implemented: clean and shifted figures come from ``evaluate_run`` (not written back; an
NER run's shifted sets are evaluated as ``--data FILE``), attacks from ``attack_run``. An attack the
run's ``metrics.json`` already holds for the same data with the same settings (constraints, candidates,
seed, number of examples) is read instead of re-run; attacks that do run are merged into the run's
``metrics.json`` as ``caveat attack`` does, so the next compare reuses them. Keys of ``compare.json``:
docs/attacks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from caveat.data.resolve import resolve_split
from caveat.errors import CaveatError, ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.io import write_json_atomic, write_text_atomic
from caveat.models.rundir import Run, open_run
from caveat.report.compare import compare_report
from caveat.report.html import render_html
from caveat.robustness.attacks import Lexicons, load_lexicons, parse_attacks
from caveat.robustness.compare_rows import (
    AttackSettings,
    attack_figures,
    cost_note,
    ner_row,
    text_row,
)
from caveat.robustness.compare_table import ner_table, text_table, to_markdown
from caveat.robustness.held_out import NOTE as HELD_OUT_NOTE
from caveat.robustness.held_out import mark_held_out, training_sources
from caveat.robustness.shift import parse_shifts
from caveat.robustness.similarity import SentenceEncoder
from caveat.types import Task

DEFAULT_SETTINGS = AttackSettings()


def _one_task(runs: list[Run]) -> Task:
    """The task all ``runs`` share; a ConfigError naming the runs of each task when they differ."""
    by_task: dict[Task, list[str]] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(str(run.path))
    if len(by_task) > 1:
        listed = "; ".join(f"{task.value}: {', '.join(paths)}" for task, paths in by_task.items())
        raise ConfigError(
            f"caveat compare puts runs of one task in one table, but these runs mix tasks ({listed}). "
            "Fix: compare runs of one task — run caveat compare once per task"
        )
    return runs[0].task


def _ner_shift_check(run: Run, shifts: dict[str, str]) -> None:
    """Read each shifted set as ``evaluate_run`` will (the run's reader, tags checked against the run's),
    so a bad file fails before any model pass; every sentence must carry gold tags."""

    for name, path in shifts.items():
        try:
            split = resolve_split(run, path)
        except CaveatError as err:
            raise type(err)(
                f"{{shift}} {name}={path} (for {run.path}): " + err.template, fields=("shift", *err.fields)
            ) from err
        if not split.examples:
            raise ConfigError(
                f"{{shift}} {name}={path} holds no sentences; give a tagged file with at least one", fields=("shift",)
            )
        untagged = sum(ex.tags is None for ex in split.examples)
        if untagged:
            raise ConfigError(
                f"{{shift}} {name}={path}: {untagged} of {len(split.examples)} sentences have no gold tags; "
                "a shifted set is scored against its tags, so give a tagged file (e.g. CoNLL word/tag columns)",
                fields=("shift",),
            )


def _labels(runs: list[Run]) -> list[str]:
    """Run folder names, or the paths where two runs share a name."""
    names = [r.path.name for r in runs]
    return names if len(set(names)) == len(names) else [str(r.path) for r in runs]


def _baseline(labels: list[str], runs: list[Run], baseline: str | None) -> str:
    """The table name of the baseline run: ``baseline`` given as a name or a path, or the first run."""
    if baseline is None:
        return labels[0]
    for label, run in zip(labels, runs):
        if baseline == label or Path(baseline).resolve() == run.path.resolve():
            return label
    raise ConfigError(
        f"{{baseline}} {baseline!r} is not one of the compared runs ({', '.join(labels)}); "
        "give one of those names (or paths), or leave it out for the first run",
        fields=("baseline",),
    )


def compare_runs(
    runs: Sequence[str | Path | Run],
    data: str = "test",
    *,
    attacks: str | Sequence[str] | None = None,
    shift: Sequence[str] | dict[str, str] = (),
    settings: AttackSettings = DEFAULT_SETTINGS,
    similarity_model: str = "default",
    encoder=None,
    batch_size: int | None = None,
    baseline: str | None = None,
    adversarial: Sequence[str] | dict[str, str] = (),
    held_out_attacks: bool = False,
) -> dict:
    """Compare ``runs`` of one task on ``data`` (a split name or a labelled file).

    Text-classification and token-classification (NER) runs get their own columns (docs/attacks.md);
    mixing the two is a ConfigError.

    Parameters
    ----------
    runs : run directories (or opened runs), at least one.
    attacks : attack names (``"greedy"`` or ``"charswap,greedy"``, ``"all"`` for every family); None for no attack
        columns.
    shift : shifted labelled sets, ``["cr=FILE", ...]`` or ``{name: file}``.
    adversarial : human-made adversarial labelled sets, the same form (text-classification runs); their names must
        differ from the shifted sets'.
    held_out_attacks : mark each run's attacks seen or held-out by its training's candidate sources and report its
        mean after-attack gain over the baseline on each kind (``held_out.mark_held_out``); needs ``attacks``.
    settings : attack options; an attack saved with the same ones is reused.
    similarity_model, encoder : the attacks' sentence encoder (one, shared by every run).
    baseline : the run the others are measured against on the page (``write_compare``): its name in the
        table or its path; the first run when None.

    Returns
    -------
    dict with ``data``, ``attacks``, ``shifts``, ``adversarial`` (name -> file), ``held_out_attacks``,
    ``settings``, ``baseline`` (a run name), ``rows`` (one per run, in order), ``columns`` and ``table`` (the
    markdown table's header and cells) and ``notes``; NER results also hold ``task``.
    """

    if not runs:
        raise ConfigError("compare needs at least one run directory; give e.g. caveat compare runs/erm runs/fgm")
    opened = [r if isinstance(r, Run) else open_run(r) for r in runs]
    task = _one_task(opened)
    labels = _labels(opened)
    base = _baseline(labels, opened, baseline)
    names = parse_attacks(attacks) if attacks else []
    shifts = parse_shifts(shift)  # every problem before the first model pass
    adversarial_sets = _adversarial_sets(task, adversarial, shifts)
    if held_out_attacks and not names:
        raise ConfigError(
            "{held_out_attacks} sorts attacks into seen and held-out, but no attack is given: add {attacks} "
            "(e.g. all, or greedy,charswap,pwws)",
            fields=("held_out_attacks", "attacks"),
        )
    if task is Task.TOKEN_CLASSIFICATION:
        for run in opened:
            _ner_shift_check(run, shifts)
    if names and encoder is None:
        encoder = SentenceEncoder(similarity_model)  # loaded once, on first use, for every run
    lexicons = load_lexicons(settings.lexicons) if names else None  # read once, for every run
    if task is Task.TOKEN_CLASSIFICATION:
        return _compare_ner(
            opened,
            labels,
            base,
            data,
            names,
            shifts,
            settings,
            encoder=encoder,
            batch_size=batch_size,
            lexicons=lexicons,
            held_out_attacks=held_out_attacks,
        )
    rows = []
    for label, run in zip(labels, opened):
        evaluated = evaluate_run(
            run,
            data,
            methods="least_confidence",
            shift=shifts,
            adversarial=adversarial_sets,
            batch_size=batch_size,
            write=False,
        )
        found = (
            attack_figures(
                run, data, names, settings, evaluated["n"], encoder=encoder, batch_size=batch_size, lexicons=lexicons
            )
            if names
            else {}
        )
        rows.append(text_row(label, run, evaluated, found))
    result = {
        "data": data,
        "attacks": names,
        "shifts": shifts,
        "adversarial": adversarial_sets,
        "held_out_attacks": held_out_attacks,
        "settings": asdict(settings),
        "baseline": base,
        "rows": rows,
        "notes": [],
    }
    if names:
        n = rows[0]["attack"][names[0]]["n"]
        result["notes"].append(
            f"after-attack accuracy: over the first {n} examples of {data}; `accuracy` and ECE over all of them"
        )
        if any("answered_clean" in a for r in rows for a in r["attack"].values()):
            result["notes"].append(
                "caught: share of the successful adversarial examples the calibrated policy withholds (abstains on "
                "or routes); answered error: error rate of the inputs it still answers after the attack (clean: "
                "rows[].attack.<attack>.answered_error_clean); — for runs that are not calibrated"
            )
    if held_out_attacks:
        _held_out(result, opened, score="after_attack_accuracy", label="accuracy")
    if adversarial_sets:
        result["notes"].append(
            "adversarial sets: human-made adversarial examples, scored like a shifted set; answered: share the "
            "calibrated policy answers, answered error: error among those (— for runs that are not calibrated)"
        )
    result["notes"].append(cost_note(rows))
    result["columns"], result["table"] = text_table(result)
    return result


def _adversarial_sets(
    task: Task, adversarial: Sequence[str] | dict[str, str], shifts: dict[str, str]
) -> dict[str, str]:
    """The adversarial sets by name (checked as ``parse_shifts`` checks shifted sets): text-classification runs only,
    and no name shared with a shifted set (their columns would collide)."""
    sets = parse_shifts(adversarial, field="adversarial")
    if sets and task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            f"{{adversarial}} is for text-classification runs; these are {task.value} runs: drop {{adversarial}}",
            fields=("adversarial",),
        )
    shared = [name for name in sets if name in shifts]
    if shared:
        raise ConfigError(
            f"{{adversarial}} and {{shift}} both name a set {', '.join(map(repr, shared))}; give each set its own "
            "name (the table has one column per name)",
            fields=("adversarial", "shift"),
        )
    return sets


def _held_out(result: dict, runs: list[Run], *, score: str, label: str) -> None:
    """Mark each row's attacks seen or held-out and its mean gains over the baseline (``held_out.mark_held_out``),
    and say how in a note."""
    for row, run in zip(result["rows"], runs):
        row["training_sources"] = training_sources(run.config.train)
    mark_held_out(result["rows"], result["attacks"], result["baseline"], score=score)
    result["notes"].append(HELD_OUT_NOTE.format(score=label, baseline=result["baseline"]))


def _compare_ner(
    runs: list[Run],
    labels: list[str],
    base: str,
    data: str,
    names: list[str],
    shifts: dict[str, str],
    settings: AttackSettings,
    *,
    encoder,
    batch_size: int | None,
    lexicons: Lexicons | None = None,
    held_out_attacks: bool = False,
) -> dict:
    """``compare_runs`` for token-classification runs (shifted sets already checked)."""

    rows = []
    for label, run in zip(labels, runs):
        evaluated = evaluate_run(run, data, batch_size=batch_size, write=False)
        shifted = {name: evaluate_run(run, path, batch_size=batch_size, write=False) for name, path in shifts.items()}
        found = (
            attack_figures(
                run, data, names, settings, evaluated["n"], encoder=encoder, batch_size=batch_size, lexicons=lexicons
            )
            if names
            else {}
        )
        rows.append(ner_row(label, run, evaluated, shifted, found))
    result = {
        "data": data,
        "task": Task.TOKEN_CLASSIFICATION.value,
        "attacks": names,
        "shifts": shifts,
        "adversarial": {},
        "held_out_attacks": held_out_attacks,
        "settings": asdict(settings),
        "baseline": base,
        "rows": rows,
        "notes": [],
    }
    if names:
        n = rows[0]["attack"][names[0]]["n"]
        result["notes"].append(
            f"after-attack span F1 and sentence accuracy (all spans right): over the first {n} sentences of {data}, "
            "context words perturbed only (their clean figures: rows[].attack.<attack>.clean_span_f1 and "
            "clean_accuracy); `span F1` (seqeval, entity level) and span ECE over all of them"
        )
    aggregates = sorted({r["span_aggregate"] for r in rows})
    result["notes"].append(
        f"span ECE: span confidences aggregated by {' / '.join(aggregates)} over the span's words "
        "(a calibrated run's own aggregate), raw model; calibrated: after the run's word temperature"
    )
    if held_out_attacks:
        _held_out(result, runs, score="after_attack_span_f1", label="span F1")
    result["notes"].append(cost_note(rows))
    result["columns"], result["table"] = ner_table(result)
    return result


def write_compare(result: dict, out: str | Path) -> tuple[Path, Path, Path]:
    """Write ``compare.json``, ``compare.md`` and the page ``report.html`` (with its data, ``report.json``;
    ``caveat.report.compare``) into folder ``out``, each atomically; the paths of the first three.
    The page is rendered before anything is written, so a failure leaves the folder as it was."""

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"{{out}} {out} is a file; give a folder for compare.json, compare.md and report.html", fields=("out",)
        )
    page = compare_report(result)
    html = render_html(page)
    paths = out / "compare.json", out / "compare.md", out / "report.html"
    write_json_atomic(paths[0], result)
    write_text_atomic(paths[1], to_markdown(result))
    write_text_atomic(out / "report.json", page.model_dump_json(indent=2) + "\n")
    write_text_atomic(paths[2], html)
    return paths
