"""The Python API: train, predict and evaluate in three calls; attack, compare and tune for robustness.

>>> import caveat
>>> run = caveat.train("examples/intents.yaml", out="runs/demo")      # doctest: +SKIP
>>> caveat.predict(run, ["where is my parcel"]).probs.shape          # doctest: +SKIP
(1, 1, 8)
>>> caveat.compare(["runs/erm", "runs/fgm"], attacks="greedy", out="compare")["table"]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from caveat.config import RunConfig, load_config
from caveat.types import Predictions


def train(config: str | Path | RunConfig, out: str | Path, *, overrides: Sequence[str] = (), resume: bool = False, progress: bool = True) -> Path:
    """Fine-tune as ``config`` says and write the run directory ``out``; returns ``out``."""
    from caveat.training.loop import Trainer

    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    Trainer(cfg, out, progress=progress).fit(resume=resume)
    return Path(out)


def predict(run: str | Path, inputs: Sequence[str] | Sequence[Sequence[str]], *, method: str = "deterministic",
            samples: int = 10, seed: int = 0, batch_size: int | None = None) -> Predictions:
    """Predictions for texts or word lists: probs (1, N, C) (or (1, N, W, C) for token tasks);
    ``method="mc_dropout"`` gives (samples, N, C); ``method="ensemble"`` (members, N, C)."""
    from caveat.errors import ConfigError
    from caveat.inference import Predictor

    methods = {"deterministic": 1, "mc_dropout": samples, "ensemble": 1}
    if method not in methods:
        raise ConfigError(f"method={method!r} is not available; choose one of: {', '.join(methods)}")
    from caveat.models.rundir import open_run

    opened = open_run(run)
    predictor = Predictor.from_run(opened, batch_size=batch_size)
    if method == "ensemble":
        return ensemble_predict(predictor.ensemble(opened), list(inputs))
    return predictor.predict(list(inputs), samples=methods[method], seed=seed)


def ensemble_predict(members, inputs) -> Predictions:
    """Stack the members' deterministic predictions: probs (M members, N, C); features of member 0."""
    import numpy as np

    if len(members) < 2:
        from caveat.errors import ConfigError

        raise ConfigError("this run has no ensemble members; train one with caveat train ... --ensemble N")
    preds = [m.predict(inputs) for m in members]
    return Predictions(probs=np.concatenate([p.probs for p in preds]), logits=np.concatenate([p.logits for p in preds]),
                       features=preds[0].features, mask=preds[0].mask, labels=preds[0].labels)


def evaluate(run: str | Path, data: str = "test", *, write: bool = True) -> dict:
    """Metrics of a run on a split name or a labelled file (also merged into ``metrics.json``)."""
    from caveat.evaluation.run import evaluate_run

    return evaluate_run(run, data, write=write)


def attack(run: str | Path, data: str = "test", attacks: str | Sequence[str] = "greedy", **options) -> dict:
    """Attack a run on ``data`` (``caveat attack``; ``options``: ``caveat.robustness.run.attack_run``'s, e.g.
    ``max_examples``, ``max_change``, ``min_similarity``): per attack the accuracy before and after, success
    rate, queries and successful examples, also merged into the run's ``metrics.json``."""
    from caveat.robustness.run import attack_run

    return attack_run(run, data, attacks, **options)


def compare(runs: Sequence[str | Path], data: str = "test", *, attacks: str | Sequence[str] | None = None,
            shift: Sequence[str] | dict[str, str] = (), out: str | Path | None = None, baseline: str | None = None,
            similarity_model: str = "default", **settings) -> dict:
    """Runs of one task side by side (``caveat compare``): clean, after each attack, on each shifted set, cost.
    ``settings``: the attacks' (``caveat.robustness.compare.AttackSettings``: ``max_examples``, ``max_change``,
    ``min_similarity``, ``max_candidates``, ``seed``); ``similarity_model``: their sentence encoder. With ``out``,
    also writes compare.json, compare.md and the page report.html there."""
    from caveat.robustness.compare import AttackSettings, compare_runs, write_compare

    result = compare_runs(runs, data, attacks=attacks, shift=shift, settings=AttackSettings(**settings), baseline=baseline,
                          similarity_model=similarity_model)
    if out is not None:
        write_compare(result, out)
    return result


def tune(config: str | Path | RunConfig, out: str | Path, key: str = "train.alpha", values: Sequence = (0.1, 0.3, 1.0, 3.0), *,
         overrides: Sequence[str] = (), criterion: str = "validation", **options) -> dict:
    """Train one run per value of config ``key``, keep the best on validation in ``out`` (``caveat tune``):
    ``criterion`` ``"validation"`` or ``"attack:NAME"``; ``options``: ``caveat.training.select.sweep``'s
    (``clean_tolerance``, ``attack_settings``, ``progress``)."""
    from caveat.training.select import sweep

    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    return sweep(cfg, out, key, list(values), criterion=criterion, **options)
