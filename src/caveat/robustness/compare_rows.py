"""The rows of ``caveat compare`` (``compare.py``): one run's figures, gathered from ``evaluate_run`` and
``attack_run``; the attack settings an entry saved in ``metrics.json`` must match to be reused; a run's training
cost and its recipe in a few words. Text-classification rows (``text_row``) and NER rows (``ner_row``) share the
attack bookkeeping (``attack_figures``)."""

from __future__ import annotations

from dataclasses import dataclass

from caveat.calibration import SpanCalibration
from caveat.errors import ConfigError
from caveat.io import read_json
from caveat.models.rundir import Run
from caveat.robustness.attacks import Constraints, Lexicons, load_lexicons
from caveat.robustness.metrics import POLICY_KEYS
from caveat.robustness.run import attack_run, reads_policy

COST_NOTE = (
    "seconds per step: caveat.json's training seconds / optimizer steps — wall time of the whole fit "
    "(validation passes and checkpoints included) on the machine and processes that trained the run, so "
    "compare it only between runs trained alike; benchmarks/step_cost.py times steps alone"
)


# a text run's attack figures in its compare row (attack_run's, see metrics.attack_metrics)
TEXT_ATTACK_KEYS = (
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
# an NER run's attack figures in its compare row (attack_run's, see ner.span_attack_metrics): clean_accuracy and
# after_attack_accuracy are sentence accuracies (all of a sentence's spans right)
NER_ATTACK_KEYS = (
    *TEXT_ATTACK_KEYS,
    "clean_span_f1",
    "after_attack_span_f1",
    "clean_span_errors",
    "after_attack_span_errors",
    "gold_spans",
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


def _set_figures(s: dict) -> dict:
    """What every row gives of a set scored by ``evaluate_run`` (a shifted or an adversarial one)."""
    return {
        "n": s["n"],
        "accuracy": s["accuracy"],
        "macro_f1": s["macro_f1"],
        "ece": s["ece"],
        "calibrated_ece": s.get("calibrated", {}).get("ece"),
    }


def adversarial_figures(evaluated: dict) -> dict:
    """Per human-made adversarial set: ``n``, ``accuracy``, ``ece``, ``calibrated_ece`` and, for a calibrated run,
    what its policy does on the set: ``answered`` (share answered) and ``answered_error`` (error among them)."""
    return {
        name: {
            **_set_figures(s),
            "answered": s.get("abstention", {}).get("coverage"),
            "answered_error": s.get("abstention", {}).get("risk"),
        }
        for name, s in evaluated.get("adversarial", {}).items()
    }


def _run_fields(label: str, run: Run, evaluated: dict) -> dict:
    """The first keys of every row: which run, how it was trained, whether it is calibrated."""
    cfg = run.config.train
    return {
        "run": label,
        "path": str(run.path),
        "objective": cfg.objective,
        "alpha": cfg.alpha,
        "recipe": recipe(cfg),
        "calibrated": "calibrated" in evaluated,
    }


def text_row(label: str, run: Run, evaluated: dict, attacks: dict) -> dict:
    """A text-classification run's row: ``evaluate_run``'s figures on the data, on each shifted set and on each
    human-made adversarial set, ``attack_run``'s figures per attack (read through a calibrated run's policy too)."""
    shift = {
        name: {**_set_figures(s), "least_confidence_auroc": s["ood"]["least_confidence"]["auroc"]}
        for name, s in evaluated.get("shift", {}).items()
    }
    attack = {
        name: {
            **{k: a.get(k) for k in TEXT_ATTACK_KEYS},
            **{k: a[k] for k in POLICY_KEYS if k in a},  # a calibrated run's attack read through its policy
            "examples": a.get("examples", [])[:EXAMPLES],
        }
        for name, a in attacks.items()
    }
    return {
        **_run_fields(label, run, evaluated),
        "n": evaluated["n"],
        "accuracy": evaluated["accuracy"],
        "macro_f1": evaluated["macro_f1"],
        "ece": evaluated["ece"],
        "calibrated_ece": evaluated.get("calibrated", {}).get("ece"),
        "attack": attack,
        "shift": shift,
        "adversarial": adversarial_figures(evaluated),
        "training": training_cost(run),
    }


def ner_row(label: str, run: Run, evaluated: dict, shifted: dict[str, dict], attacks: dict) -> dict:
    """A token-classification run's row: ``evaluate_run``'s span figures on the data and on each
    shifted set, ``attack_run``'s span and sentence figures per attack."""

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
        **_run_fields(label, run, evaluated),
        "span_aggregate": aggregate,
        **figures(evaluated),
        "attack": attack,
        "shift": {name: figures(e) for name, e in shifted.items()},
        "training": training_cost(run),
    }


def cost_note(rows: list[dict]) -> str:
    return (
        COST_NOTE
        if any(r["training"]["seconds_per_step"] is not None for r in rows)
        else (
            "seconds per step: no run's caveat.json records training seconds and steps (runs not trained by caveat "
            "train)"
        )
    )
