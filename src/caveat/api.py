"""The Python API: train, predict and evaluate in three calls.

>>> import caveat
>>> run = caveat.train("examples/intents.yaml", out="runs/demo")      # doctest: +SKIP
>>> caveat.predict(run, ["where is my parcel"]).probs.shape          # doctest: +SKIP
(1, 1, 8)
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
    ``method="mc_dropout"`` gives (samples, N, C)."""
    from caveat.errors import ConfigError
    from caveat.inference import Predictor

    methods = {"deterministic": 1, "mc_dropout": samples}
    if method not in methods:
        raise ConfigError(f"method={method!r} is not available; choose one of: {', '.join(methods)}")
    return Predictor.from_run(run, batch_size=batch_size).predict(list(inputs), samples=methods[method], seed=seed)


def evaluate(run: str | Path, data: str = "test", *, write: bool = True) -> dict:
    """Metrics of a run on a split name or a labelled file (also merged into ``metrics.json``)."""
    from caveat.evaluation.run import evaluate_run

    return evaluate_run(run, data, write=write)
