"""Choose a training setting on validation: one run per value of one config key (a grid; every run
kept under ``OUT/sweep/``), scored on the validation split by its clean score or by its score under an
adversarial attack, the best copied to ``OUT``.

``alpha`` (the robustness strength) is the usual key; any key of the config can be swept
(``train.label_smoothing``, ``train.adv.epsilon``, ``train.augment.fraction``, ...). A run already in
``OUT/sweep/`` with exactly the config a value asks for is scored again, not retrained, so a sweep given
more values, or run again after a run failed, trains only what it lacks (a run stopped mid-way is named,
to be resumed with ``caveat train --resume`` or deleted).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from caveat.config import RunConfig, valid_keys, with_overrides
from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.io import write_json_atomic, write_text_atomic
from caveat.models.rundir import open_run
from caveat.robustness.attacks import parse_attacks
from caveat.robustness.compare_rows import AttackSettings, attack_figures
from caveat.robustness.similarity import SentenceEncoder
from caveat.training.checkpoint import has_checkpoint
from caveat.training.run import is_main_process, run_training
from caveat.training.validation_metric import ValidationMetric, validation_metric
from caveat.types import Task

CRITERIA = (
    "'validation' (the clean validation score) or 'attack:NAME' (the validation score under attack NAME, e.g. "
    "attack:greedy)"
)


def parse_criterion(criterion: str) -> str | None:
    """The attack a criterion names (``"attack:greedy"`` -> ``"greedy"``), None for ``"validation"``;
    a ConfigError for anything else or an unknown attack."""

    if criterion == "validation":
        return None
    kind, _, name = criterion.partition(":")
    if kind != "attack" or not name:
        raise ConfigError(f"criterion must be {CRITERIA}. Got {criterion!r}.")
    if "," in name:
        raise ConfigError(
            f"criterion {criterion!r} names several attacks; a sweep is scored by one, e.g. attack:greedy"
        )
    return parse_attacks(name)[0]


def finished_config(run_dir: str | Path) -> RunConfig | None:
    """The config of the finished run in ``run_dir`` (defaults added since filled in), or None when there is none."""
    run_dir = Path(run_dir)
    info = run_dir / "caveat.json"
    if not (info.is_file() and (run_dir / "model" / "head.safetensors").is_file()):
        return None
    try:
        return RunConfig.model_validate(json.loads(info.read_text())["config"])
    except (ValueError, KeyError):
        return None


def _same_config(run_dir: Path, cfg: RunConfig) -> bool:
    """Does ``run_dir`` hold a finished run trained with exactly ``cfg``?"""
    saved = finished_config(run_dir)
    return saved is not None and saved.model_dump(mode="json") == cfg.model_dump(mode="json")


def _validation_score(run_dir: Path, metric: ValidationMetric) -> float:
    """The kept model's clean validation score in the run's ``train.select_metric`` (accuracy, the SemEval macro-F1
    for relations, span F1 for NER, unless set): what ``caveat train`` saved in metrics.json, else evaluated now."""

    path = run_dir / "metrics.json"
    saved = json.loads(path.read_text()).get("validation", {}) if path.is_file() else {}
    return saved[metric.name] if metric.name in saved else evaluate_run(run_dir, "validation")[metric.name]


def _attacked_score(run_dir: Path, task: Task, attack: str, settings, encoder) -> dict:
    """The validation score under ``attack`` (after-attack accuracy, or span F1 for NER) with its figures;
    an attack saved with the same settings is read, not re-run."""

    run = open_run(run_dir)
    n = len(resolve_split(run, "validation").examples)
    figures = attack_figures(run, "validation", [attack], settings, n, encoder=encoder)[attack]
    key = "after_attack_accuracy" if task.classifies_texts else "after_attack_span_f1"
    return {
        "score": figures[key],
        **{
            k: figures.get(k)
            for k in ("n", "clean_accuracy", "after_attack_accuracy", "success_rate", "mean_queries", "reused")
        },
    }


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep(
    config: RunConfig,
    out: str | Path,
    key: str,
    values: list,
    *,
    criterion: str = "validation",
    attack_settings=None,
    clean_tolerance: float | None = None,
    similarity_model: str = "default",
    progress: bool = True,
) -> dict:
    """Train one run per value of config ``key`` into ``out/sweep/<name>=<value>`` (``name``: the key's last
    part), score each on the validation split, copy the best to ``out``; write the table as
    ``out/sweep.json`` and ``out/sweep.md``.

    Parameters
    ----------
    key, values : a config key (``train.alpha``, ``train.label_smoothing`` ...) and the values to try, each
        checked against the config before anything trains.
    criterion : ``"validation"`` (the clean validation score of each kept model in the run's
        ``train.select_metric``: accuracy, the SemEval macro-F1 for relations, span F1 for NER, unless set; a
        loss such as ``nll`` counts lower as better) or ``"attack:NAME"`` (the after-attack accuracy, or span
        F1 for NER, under attack NAME on the validation split: robustness chosen on validation, never on test).
        Ties go to the better clean score, then to the earlier value.
    attack_settings : the attack's options (``caveat.robustness.compare_rows.AttackSettings``; its
        ``max_examples`` validation examples are attacked; default: all of them, ≤ 20% of words, similarity ≥ 0.8).
    clean_tolerance : with an attack criterion, only values whose clean validation score is within this
        much of the best clean one may win (e.g. 0.015: robustness may cost at most 1.5 points).
    """

    if key not in valid_keys():
        raise ConfigError(f"unknown key {key!r} to sweep; valid keys: {', '.join(valid_keys())}")
    if not values:
        raise ConfigError(f"give at least one value of {key} to try in {{values}}, e.g. 0,0.1,0.2", fields=("values",))
    if len({_label(v) for v in values}) != len(values):
        raise ConfigError(f"the values of {key} repeat ({', '.join(map(_label, values))}); give each once")
    attack = parse_criterion(criterion)
    if clean_tolerance is not None and (attack is None or not clean_tolerance >= 0):
        raise ConfigError(
            f"clean_tolerance applies to an attack criterion and must be >= 0. Got {clean_tolerance!r} "
            f"with criterion {criterion!r}"
        )
    settings = attack_settings or AttackSettings(max_examples=None)
    # a seed sweep varies the model's initialisation and data order, not the data: every point carves the
    # split of the config's seed, so their validation scores are on the same examples
    pin = [f"data.split_seed={config.seed}"] if key == "seed" and config.data.split_seed is None else []
    configs = [
        with_overrides(config, [f"{key}={_label(v)}", *pin]) for v in values
    ]  # every value checked before any training
    out = Path(out)
    name = key.rsplit(".", 1)[-1]
    run_dirs = [out / "sweep" / f"{name}={_label(v)}" for v in values]
    for run_dir in run_dirs:
        if has_checkpoint(run_dir):
            raise ConfigError(
                f"{run_dir} holds an unfinished run of this sweep; finish it with caveat train --resume --out "
                f"{run_dir} (the same config), or delete that folder, then run the sweep again"
            )
    rows = []
    for value, cfg, run_dir in zip(values, configs, run_dirs):
        reused = _same_config(run_dir, cfg)
        if reused:
            seconds = json.loads((run_dir / "caveat.json").read_text()).get("training", {}).get("seconds")
        else:
            seconds = run_training(cfg, run_dir, progress=progress)["training"]["seconds"]
        rows.append({"value": value, "run": str(run_dir), "seconds": seconds, "reused": reused})
    if not is_main_process():
        return {}
    encoder = None
    if attack is not None:
        encoder = SentenceEncoder(similarity_model)
    metric = validation_metric(config.task, config.train.select_metric)
    clean = lambda r: r["validation"] if metric.higher_is_better else -r["validation"]  # noqa: E731 (higher: better)
    for row in rows:
        row["validation"] = _validation_score(Path(row["run"]), metric)
        if attack is not None:
            row["attack"] = _attacked_score(Path(row["run"]), config.task, attack, settings, encoder)
            row["score"] = row["attack"]["score"]
        else:
            row["score"] = row["validation"]
    top_clean = max(clean(r) for r in rows)
    for row in rows:
        row["eligible"] = clean_tolerance is None or clean(row) >= top_clean - clean_tolerance - 1e-12
    best = max(
        (r for r in rows if r["eligible"]), key=lambda r: (r["score"] if attack else clean(r), clean(r))
    )  # max keeps the first tie
    for part in ("model", "caveat.json", "metrics.json"):
        src, dst = Path(best["run"]) / part, out / part
        if dst.is_dir():
            shutil.rmtree(dst)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    table = {
        "key": key,
        "criterion": criterion,
        "validation_metric": metric.name,
        "clean_tolerance": clean_tolerance,
        "best_value": best["value"],
        "best_run": best["run"],
        "objective": config.train.objective,
        "rows": rows,
    }
    if attack is not None:
        table["attack_settings"] = asdict(settings)
    write_json_atomic(out / "sweep.json", table)
    write_text_atomic(out / "sweep.md", to_markdown(table))
    return table


def to_markdown(table: dict) -> str:
    """The sweep as a markdown table; the winner marked."""
    attacked = table["criterion"] != "validation"
    name = table.get("validation_metric", "accuracy")
    metric = "validation" + (f" after {table['criterion'].split(':', 1)[1]}" if attacked else "")
    lines = [
        f"| {table['key']} | validation {name} (clean) |{f' {metric} |' if attacked else ''} seconds | reused |",
        "|---:|---:|" + ("---:|" if attacked else "") + "---:|---|",
    ]
    for r in table["rows"]:
        mark = " (best)" if r["run"] == table["best_run"] else ("" if r["eligible"] else " (clean score too low)")
        cells = [
            f"{_label(r['value'])}{mark}",
            f"{r['validation']:.4f}",
            *([f"{r['score']:.4f}"] if attacked else []),
            "—" if r["seconds"] is None else f"{r['seconds']:.0f}",
            "yes" if r["reused"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sweep_alpha(config: RunConfig, out: str | Path, alphas: list[float], *, progress: bool = True, **options) -> dict:
    """``sweep`` over ``train.alpha`` (the robustness strength of ``loss = task_loss + alpha * R``)."""
    if not alphas or any(a < 0 for a in alphas):
        raise ConfigError(f"alphas must be a non-empty list of numbers >= 0. Got {alphas}.")
    return sweep(config, out, "train.alpha", [float(a) for a in alphas], progress=progress, **options)
