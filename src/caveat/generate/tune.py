"""The sampling temperature and the meaning threshold, tuned on labelled questions and judged on held-out ones.

Sample-based estimators (semantic entropy, the graph estimators, lexical similarity...) depend on two settings
that are usually fixed by hand: the temperature the K answers are sampled at (Kuhn et al. 2023 found 0.5 best
for semantic entropy with OPT models; a 135M model at 1.0 mostly samples unrelated sentences) and, for the
estimators built on meaning clusters, the similarity at which two answers count as one meaning. Both move the
estimator's AUROC, and the best values depend on the model and the data.

:func:`tune_sampling` generates the K answers at each candidate temperature (the greedy answer, the one that is
judged, is the same at every temperature), scores the estimator at every (temperature, threshold) pair, picks
the pair with the best AUROC on a seeded half of the questions, and reports the chosen pair and the default pair
side by side on the *other* half, with a paired bootstrap interval of the difference. The held-out figure is the
honest one: the best AUROC on the tuning half is biased upwards by the choice among the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import error_detection_auroc
from caveat.generate import prompts
from caveat.generate.choose import split_halves
from caveat.generate.correctness import get_rule, judge
from caveat.generate.data import Question
from caveat.generate.estimators import Context, get_estimator
from caveat.generate.metrics import paired_auroc_difference
from caveat.generate.sampling import Generation, SampleCache, Sampler, SamplingConfig
from caveat.generate.semantic import EmbeddingEquivalence
from caveat.progress import phase
from caveat.robustness.similarity import SentenceEncoder

TEMPERATURES = (0.3, 0.5, 0.7, 1.0)
THRESHOLDS = (0.8, 0.85, 0.9, 0.95)
DEFAULT = (0.5, 0.9)  # SamplingConfig's temperature and the meaning threshold every command defaults to


def _check_grid(values: Sequence[float], name: str, low: float, high: float, default: float) -> list[float]:
    """The grid, checked (values in (low, high], none repeated), with the default added, sorted."""
    grid = [float(v) for v in values]
    if not grid:
        raise ConfigError(f"{{{name}}} is empty: give at least one value, e.g. {name}=0.5,0.9", fields=(name,))
    bad = [v for v in grid if not low < v <= high]
    if bad:
        raise ConfigError(f"{{{name}}} must lie in ({low:g}, {high:g}]; got {bad}", fields=(name,))
    if len(set(grid)) != len(grid):
        raise ConfigError(f"{{{name}}} repeats a value: {grid}", fields=(name,))
    return sorted({*grid, default})


def tune_sampling(
    questions: Sequence[Question],
    lm,
    *,
    estimator: str = "semantic_entropy",
    rule: str = "contains",
    temperatures: Sequence[float] = TEMPERATURES,
    thresholds: Sequence[float] = THRESHOLDS,
    sampling: SamplingConfig | None = None,
    cache: SampleCache | None = None,
    template: str | None = None,
    encoder=None,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict:
    """Tune ``estimator``'s sampling temperature and meaning threshold on half the ``questions``; judge on the rest.

    Parameters
    ----------
    questions : labelled questions (at least 20: two halves with right and wrong answers in each).
    lm : the :class:`~caveat.generate.lm.LanguageModel`.
    estimator : a sample-based estimator (one that needs ``samples``); the threshold grid applies only when it
        reads meaning clusters (``meaning``), otherwise the threshold is reported as not used.
    rule : the correctness rule of the greedy answers.
    temperatures, thresholds : the grids; the default pair :data:`DEFAULT` is always added.
    sampling : K, answer length, top-k/top-p and seed (its temperature is replaced by each grid value).
    encoder : the sentence encoder of the embedding equivalence (default: the packaged all-MiniLM-L6-v2).
    seed : the seed of the two halves.

    Returns
    -------
    A JSON-able dict: ``temperature`` and ``meaning_threshold`` chosen; ``grid`` (each pair's AUROC on the tuning
    half); ``held_out`` (the chosen and the default pair's AUROC on the other half, and their paired bootstrap
    difference); ``accuracy``; the halves' sizes.
    """
    found = get_estimator(estimator)
    if "samples" not in found.needs:
        raise ConfigError(
            f"estimator {estimator!r} reads only the greedy answer: the sampling temperature and meaning threshold "
            "do not change it. Tune a sample-based one, e.g. semantic_entropy, eigv or lexical_similarity",
            fields=("estimator",),
        )
    if len(questions) < 20:
        raise DataError(f"tuning needs at least 20 labelled questions (two halves); got {len(questions)}")
    sampling = sampling or SamplingConfig()
    if sampling.samples < 2:
        raise ConfigError(f"tuning needs sampled answers: samples >= 2; got {sampling.samples}", fields=("samples",))
    temps = _check_grid(temperatures, "temperatures", 0.0, 5.0, DEFAULT[0])
    uses_meaning = "meaning" in found.needs
    thrs = _check_grid(thresholds, "thresholds", 0.0, 1.0, DEFAULT[1]) if uses_meaning else [DEFAULT[1]]
    messages = [prompts.message(q, template=template) for q in questions]
    generations = {t: _generate(messages, lm, replace(sampling, temperature=t), cache) for t in temps}
    greedy = [g.greedy.text for g in generations[temps[0]]]
    errors = ~judge(greedy, list(questions), get_rule(rule))  # (N,) the greedy answer's, the same at every T
    tuned = tune_on_generations(
        generations, errors, estimator=estimator, thresholds=thrs, messages=messages, encoder=encoder, lm=lm,
        seed=seed, n_boot=n_boot,
    )  # fmt: skip
    return {"estimator": estimator, "rule": rule, "model": lm.name, "samples": sampling.samples, **tuned}


def tune_on_generations(
    generations: dict[float, Sequence[Generation]],
    errors: np.ndarray,
    *,
    estimator: str,
    thresholds: Sequence[float],
    messages: Sequence[str] | None = None,
    encoder=None,
    lm=None,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict:
    """The choice and its held-out check on generations already made: ``generations`` maps each temperature to
    the (N,) generations of the same questions, ``errors`` (N,) marks the wrong greedy answers. The grid must
    hold :data:`DEFAULT` (the temperature among the keys; the threshold among ``thresholds`` when the estimator
    reads meaning clusters). See :func:`tune_sampling` for the returned dict (less the run's settings)."""
    found = get_estimator(estimator)
    uses_meaning = "meaning" in found.needs
    thrs = list(thresholds) if uses_meaning else [DEFAULT[1]]
    if DEFAULT[0] not in generations or DEFAULT[1] not in thrs:
        raise ConfigError(f"the grid must hold the default pair {DEFAULT} to compare with it")
    errors = np.asarray(errors, dtype=bool)
    n = len(errors)
    encoder = encoder if encoder is not None else SentenceEncoder()  # one encoder for every threshold
    messages = list(messages) if messages is not None else [""] * n
    tune, held = split_halves(n, seed)
    for name, half in (("tuning", tune), ("held-out", held)):
        if errors[half].all() or not errors[half].any():
            raise DataError(
                f"the {name} half's {len(half)} greedy answers are all {'wrong' if errors[half].all() else 'right'}: "
                "AUROC needs both outcomes; give more questions or another rule"
            )
    scores: dict[tuple[float, float], np.ndarray] = {}
    with phase("score the grid", total=len(generations) * len(thrs)) as bar:
        for thr in thrs:
            for t, gens in generations.items():
                ctx = Context(lm=lm, equivalence=EmbeddingEquivalence(thr, encoder=encoder))
                scores[t, thr] = np.array([found.fn(g, ctx, m) for g, m in zip(gens, messages, strict=True)])
                bar.advance()
    grid = [
        {"temperature": t, "meaning_threshold": thr if uses_meaning else None,
         "auroc_tuning": error_detection_auroc(s[tune], errors[tune])}
        for (t, thr), s in scores.items()
    ]  # fmt: skip
    # ties go to the pair nearer the default: a grid point wins only by being better on the tuning half
    best = max(grid, key=lambda r: (r["auroc_tuning"], -abs(r["temperature"] - DEFAULT[0]),
                                    -abs((r["meaning_threshold"] or DEFAULT[1]) - DEFAULT[1])))  # fmt: skip
    chosen = (best["temperature"], best["meaning_threshold"] if uses_meaning else DEFAULT[1])
    paired = paired_auroc_difference(scores[chosen][held], scores[DEFAULT][held], errors[held], n_boot=n_boot)
    return {
        "temperature": chosen[0],
        "meaning_threshold": chosen[1] if uses_meaning else None,
        "threshold_used": uses_meaning,
        "n": n,
        "n_tuning": len(tune),
        "n_held_out": len(held),
        "accuracy": float(1 - errors.mean()),
        "grid": sorted(grid, key=lambda r: -r["auroc_tuning"]),
        "held_out": {
            "chosen_auroc": error_detection_auroc(scores[chosen][held], errors[held]),
            "default_auroc": error_detection_auroc(scores[DEFAULT][held], errors[held]),
            "default": {"temperature": DEFAULT[0], "meaning_threshold": DEFAULT[1] if uses_meaning else None},
            "difference": paired["difference"],
            "difference_interval": paired["ci"],
        },
        "use": f"--temperature {chosen[0]:g}" + (f" --meaning-threshold {chosen[1]:g}" if uses_meaning else ""),
    }


def _generate(messages: Sequence[str], lm, config: SamplingConfig, cache: SampleCache | None) -> list[Generation]:
    sampler = Sampler(lm, config, cache=cache)
    out = []
    with phase(f"sample at temperature {config.temperature:g}", total=len(messages)) as bar:
        for message in messages:
            out.append(sampler(lm.prompt(message)))
            bar.advance()
    return out
