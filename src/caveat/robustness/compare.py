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
from dataclasses import asdict, dataclass
from pathlib import Path

from caveat.calibration import SpanCalibration
from caveat.data.resolve import resolve_split
from caveat.errors import CaveatError, ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.io import read_json, write_json_atomic, write_text_atomic
from caveat.models.rundir import Run, open_run
from caveat.report.compare import compare_report
from caveat.report.html import render_html
from caveat.robustness.attacks import Constraints, Lexicons, load_lexicons, parse_attacks
from caveat.robustness.compare_table import ner_table, text_table, to_markdown
from caveat.robustness.held_out import NOTE as HELD_OUT_NOTE
from caveat.robustness.held_out import mark_held_out, training_sources
from caveat.robustness.metrics import POLICY_KEYS
from caveat.robustness.run import attack_run, reads_policy
from caveat.robustness.shift import parse_shifts
from caveat.robustness.similarity import SentenceEncoder
from caveat.types import Task

COST_NOTE = (
    "seconds per step: caveat.json's training seconds / optimizer steps — wall time of the whole fit "
    "(validation passes and checkpoints included) on the machine and processes that trained the run, so "
    "compare it only between runs trained alike; benchmarks/step_cost.py times steps alone"
)

# an NER run's attack figures in its compare row (attack_run's, see ner.span_attack_metrics): clean_accuracy and
# after_attack_accuracy are sentence accuracies (all of a sentence's spans right)
NER_ATTACK_KEYS = (
    "n",
    "clean_accuracy",
    "after_attack_accuracy",
    "clean_span_f1",
    "after_attack_span_f1",
    "clean_span_errors",
    "after_attack_span_errors",
    "gold_spans",
    "success_rate",
    "mean_queries",
    "mean_changed_fraction",
    "mean_similarity",
    "reused",
    "sources",
    "antonym_filter",
)
EXAMPLES = (
    3  # successful adversarial examples kept per run and attack (rows[].attack.<name>.examples; the page shows them)
)


@dataclass(frozen=True)
class AttackSettings:
    """The settings an attack entry must match to be reused (``attack_run``'s options; ``lexicons``: their
    folder, None for the default, ``run.lexicons_folder``)."""

    max_examples: int | None = 500
    max_change: float = 0.2
    min_similarity: float = 0.8
    max_candidates: int = 20
    seed: int = 0
    lexicons: str | None = None

    def __post_init__(self) -> None:

        if self.max_examples is not None and (isinstance(self.max_examples, bool) or self.max_examples < 1):
            raise ConfigError(f"max_examples must be >= 1 (or None for all). Got {self.max_examples!r}.")
        if isinstance(self.max_candidates, bool) or self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be an integer >= 1. Got {self.max_candidates!r}.")
        Constraints(self.max_change, self.min_similarity)  # raises on a bad budget or similarity

    def matches(self, entry: dict, n_data: int, *, policy: bool = False, antonym_filter: bool | None = None) -> bool:
        """Was ``entry`` (a ``metrics.json`` ``attack.<data>.<name>``) made with these settings on the
        first ``max_examples`` of a split of ``n_data`` examples, and read through a calibrated policy
        exactly when ``policy`` (an entry saved before the run was calibrated is stale)? With
        ``antonym_filter`` (is the filter on now?) given, the entry must also say its ``sources`` (entries saved
        before candidates were filtered do not) and have had the filter on if it is on now: an unfiltered entry
        is stale once the lexicons are there, a filtered one is still good without them (it says so)."""

        n = n_data if self.max_examples is None else min(self.max_examples, n_data)
        return (
            entry.get("constraints") == Constraints(self.max_change, self.min_similarity).as_dict()
            and entry.get("max_candidates") == self.max_candidates
            and entry.get("seed") == self.seed
            and entry.get("n") == n
            and ("answered_clean" in entry) == policy
            and (antonym_filter is None or ("sources" in entry and (entry.get("antonym_filter") or not antonym_filter)))
        )


def training_cost(run: Run) -> dict:
    """``seconds``, ``steps``, ``processes`` and ``seconds_per_step`` from the run's caveat.json (None when
    the run holds no training summary)."""
    t = run.info.get("training") or {}
    seconds, steps = t.get("seconds"), t.get("steps")
    per_step = seconds / steps if isinstance(seconds, (int, float)) and isinstance(steps, int) and steps > 0 else None
    return {"seconds": seconds, "steps": steps, "processes": t.get("processes"), "seconds_per_step": per_step}


def attack_figures(
    run: Run,
    data: str,
    names: list[str],
    settings: AttackSettings,
    n_data: int,
    *,
    encoder,
    batch_size: int | None = None,
    lexicons: Lexicons | None = None,
) -> dict:
    """Per attack: its ``attack.<data>.<name>`` figures and ``reused``: read from the run's metrics.json when
    saved there with ``settings`` on ``data`` (``n_data`` examples; a calibrated text run's read through its
    policy; with the antonym filter on if ``lexicons`` has antonyms), else attacked now and merged into it.
    ``lexicons``: loaded once by the caller, else read from ``settings.lexicons``."""

    lexicons = load_lexicons(settings.lexicons if lexicons is None else lexicons)
    path = run.path / "metrics.json"
    saved = read_json(path).get("attack", {}).get(data, {}) if path.is_file() else {}
    policy, antonyms = reads_policy(run), lexicons.antonyms is not None
    out = {
        name: {**saved[name], "reused": True}
        for name in names
        if name in saved and settings.matches(saved[name], n_data, policy=policy, antonym_filter=antonyms)
    }
    todo = [name for name in names if name not in out]
    if todo:
        fresh = attack_run(
            run,
            data,
            todo,
            max_examples=settings.max_examples,
            max_change=settings.max_change,
            min_similarity=settings.min_similarity,
            max_candidates=settings.max_candidates,
            seed=settings.seed,
            encoder=encoder,
            batch_size=batch_size,
            lexicons=lexicons,
        )
        out.update({name: {**fresh["attacks"][name], "reused": False} for name in todo})
    return {name: out[name] for name in names}


def recipe(train) -> str:
    """A run's training recipe in a few words (a ``TrainConfig``): the objective with its alpha when it
    has a robustness term, label smoothing, and data augmentation (``train.augment``)."""
    out = train.objective if train.objective == "erm" else f"{train.objective} α={train.alpha:g}"
    if train.label_smoothing:
        out += f" + label smoothing {train.label_smoothing:g}"
    aug = train.augment
    if aug.enabled:
        kind = "A2T" if aug.mode == "attack" else "random edits"
        out += f" + {kind} ({aug.attack}, {aug.fraction:.0%} of train from epoch {aug.start_epoch})"
    return out


def _adversarial(evaluated: dict) -> dict:
    """Per human-made adversarial set: ``n``, ``accuracy``, ``ece``, ``calibrated_ece`` and, for a calibrated run,
    what its policy does on the set: ``answered`` (share answered) and ``answered_error`` (error among them)."""
    return {
        name: {
            "n": s["n"],
            "accuracy": s["accuracy"],
            "macro_f1": s["macro_f1"],
            "ece": s["ece"],
            "calibrated_ece": s.get("calibrated", {}).get("ece"),
            "answered": s.get("abstention", {}).get("coverage"),
            "answered_error": s.get("abstention", {}).get("risk"),
        }
        for name, s in evaluated.get("adversarial", {}).items()
    }


def _row(label: str, run: Run, evaluated: dict, attacks: dict) -> dict:
    cfg = run.config.train
    shift = {
        name: {
            "n": s["n"],
            "accuracy": s["accuracy"],
            "macro_f1": s["macro_f1"],
            "ece": s["ece"],
            "calibrated_ece": s.get("calibrated", {}).get("ece"),
            "least_confidence_auroc": s["ood"]["least_confidence"]["auroc"],
        }
        for name, s in evaluated.get("shift", {}).items()
    }
    attack = {
        name: {
            **{
                k: a.get(k)
                for k in (
                    "n",
                    "clean_accuracy",
                    "after_attack_accuracy",
                    "success_rate",
                    "mean_queries",
                    "mean_changed_fraction",
                    "mean_similarity",
                    "reused",
                    "sources",
                    "antonym_filter",
                )
            },
            **{k: a[k] for k in POLICY_KEYS if k in a},  # a calibrated run's attack read through its policy
            "examples": a.get("examples", [])[:EXAMPLES],
        }
        for name, a in attacks.items()
    }
    return {
        "run": label,
        "path": str(run.path),
        "objective": cfg.objective,
        "alpha": cfg.alpha,
        "recipe": recipe(cfg),
        "calibrated": "calibrated" in evaluated,
        "n": evaluated["n"],
        "accuracy": evaluated["accuracy"],
        "macro_f1": evaluated["macro_f1"],
        "ece": evaluated["ece"],
        "calibrated_ece": evaluated.get("calibrated", {}).get("ece"),
        "attack": attack,
        "shift": shift,
        "adversarial": _adversarial(evaluated),
        "training": training_cost(run),
    }


def _ner_row(label: str, run: Run, evaluated: dict, shifted: dict[str, dict], attacks: dict) -> dict:
    """A token-classification run's row: ``evaluate_run``'s span figures on the data and on each
    shifted set, ``attack_run``'s span and sentence figures per attack."""

    cfg = run.config.train
    caveats = SpanCalibration.from_run(run)
    aggregate = caveats.aggregate if caveats is not None else "product"  # raw span ECE like the calibrated one

    def figures(e: dict) -> dict:
        return {
            "n": e["n"],
            "n_entities": e["n_entities"],
            "span_f1": e["f1"],
            "span_precision": e["precision"],
            "span_recall": e["recall"],
            "macro_f1": e["macro_f1"],
            "token_accuracy": e["token_accuracy"],
            "span_ece": e.get("spans", {}).get(aggregate, {}).get("ece"),
            "calibrated_span_ece": e.get("calibrated", {}).get("span_ece"),
        }

    attack = {
        name: {**{k: a.get(k) for k in NER_ATTACK_KEYS}, "examples": a.get("examples", [])[:EXAMPLES]}
        for name, a in attacks.items()
    }
    return {
        "run": label,
        "path": str(run.path),
        "objective": cfg.objective,
        "alpha": cfg.alpha,
        "recipe": recipe(cfg),
        "calibrated": "calibrated" in evaluated,
        "span_aggregate": aggregate,
        **figures(evaluated),
        "attack": attack,
        "shift": {name: figures(e) for name, e in shifted.items()},
        "training": training_cost(run),
    }


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
    settings: AttackSettings = AttackSettings(),
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
        rows.append(_row(label, run, evaluated, found))
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
    result["notes"].append(_cost_note(rows))
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


def _cost_note(rows: list[dict]) -> str:
    return (
        COST_NOTE
        if any(r["training"]["seconds_per_step"] is not None for r in rows)
        else (
            "seconds per step: no run's caveat.json records training seconds and steps (runs not trained by caveat "
            "train)"
        )
    )


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
        rows.append(_ner_row(label, run, evaluated, shifted, found))
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
    result["notes"].append(_cost_note(rows))
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
