"""Certify a run directory on a split or a file (SAFER, ``certify.py``); figures merged into ``metrics.json`` under
``certify.<data>``."""

from __future__ import annotations

from pathlib import Path

from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import Run, open_run
from caveat.progress import subject
from caveat.robustness.attacks import Lexicons
from caveat.robustness.certify import DEFAULT_SAMPLES, DEFAULT_SELECTION, certify
from caveat.robustness.perturbation_sets import DEFAULT_SIZE, PerturbationSets
from caveat.robustness.run import METRICS_FILE, load_lexicons  # the attacks' lexicon folder, found as they find it
from caveat.types import Task


def certify_run(
    run_dir: str | Path | Run,
    data: str = "test",
    *,
    max_examples: int | None = 300,
    samples: int = DEFAULT_SAMPLES,
    selection: int = DEFAULT_SELECTION,
    delta: float = 0.05,
    budget: float = 0.2,
    max_changed: int | None = None,
    set_size: int = DEFAULT_SIZE,
    seed: int = 0,
    lexicons: str | Path | Lexicons | None = None,
    batch_size: int | None = None,
    write: bool = True,
) -> dict:
    """SAFER's certificate for the first ``max_examples`` examples of ``data`` (a split name or a labelled file).

    The substitutes are the PPDB synonyms of ``lexicons`` (a folder or loaded ``Lexicons``; default
    ``lexicons_folder()``), stop words and antonyms left out; the random perturbation sets hold at
    most ``set_size`` words (``PerturbationSets.from_lexicons``). The other options are ``certify``'s. The figures
    (``Certification.figures``) go into the result and into ``RUN/metrics.json`` as ``certify.<data>`` (replacing
    an earlier certification of the same data; other keys are kept).
    """
    if max_examples is not None and max_examples < 1:
        raise ConfigError(
            f"{{max_examples}} must be >= 1 (or None for all). Got {max_examples!r}.", fields=("max_examples",)
        )
    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            f"certification is for text-classification runs; this run's task is {run.task.value}. "
            "Attack it instead (caveat attack) for an empirical robustness figure"
        )
    split = resolve_split(run, data)
    examples = split.examples[:max_examples]
    unlabelled = next((ex for ex in examples if ex.label is None), None)
    if unlabelled is not None:
        raise DataError(f"{split.source}: line {unlabelled.line} has no label; certification needs labelled examples")
    loaded = load_lexicons(lexicons)
    sets = certify_sets(loaded, set_size=set_size)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    with subject(data):
        result = certify(
            predictor,
            [ex.text for ex in examples],
            [ex.label for ex in examples],
            sets=sets,
            samples=samples,
            selection=selection,
            delta=delta,
            budget=budget,
            max_changed=max_changed,
            seed=seed,
        )
    figures = result.figures()
    if write:
        path = run.path / METRICS_FILE
        existing = read_json(path) if path.is_file() else {}
        existing.setdefault("certify", {})[data] = figures
        write_json_atomic(path, existing)
    return {
        "data": data,
        "source": split.source,
        "lexicons": {"folder": loaded.folder, "files": list(loaded.files)},
        **figures,
    }


def certify_sets(lexicons: str | Path | Lexicons | None = None, *, set_size: int = DEFAULT_SIZE) -> PerturbationSets:
    """The substitutes and random perturbation sets of ``lexicons`` (default folder: ``lexicons_folder()``), as
    ``certify_run`` and a certified prediction (``certify.add_certified``) draw them. A folder without PPDB
    synonyms is refused (``ConfigError`` naming the folder and the fix), before any model pass."""
    return PerturbationSets.from_lexicons(load_lexicons(lexicons), size=set_size)
