"""Train / validation / calibration / test splits, carving missing ones from the given ones."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.types import Split, TextExample

__all__ = ["DataSplits", "make_splits"]

# One independent random stream per carve, so that e.g. turning on a test carve does not
# change which examples land in validation.
_STREAM = {"test": 0, "validation": 1, "calibration": 2, "train": 3}


@dataclass
class DataSplits:
    """All splits of one run.

    ``calibration`` fits temperature / conformal quantiles and is disjoint from
    ``train`` and ``validation``. ``extra`` holds further evaluation splits by name
    (e.g. an out-of-scope or shifted-domain set).
    """

    train: Split
    validation: Split
    calibration: Split
    test: Split | None = None
    extra: dict[str, Split] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, Split]]:
        """Yield (role, split) for every split present, in a fixed order."""
        yield "train", self.train
        yield "validation", self.validation
        yield "calibration", self.calibration
        if self.test is not None:
            yield "test", self.test
        yield from self.extra.items()


def _check_fraction(name: str, value: float, *, zero_ok: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (0 < value < 1 or (zero_ok and value == 0)):
        return
    interval = "[0, 1)" if zero_ok else "(0, 1)"
    raise ConfigError(f"{name}={value!r} is outside {interval}. Fix: set {name} to a fraction such as 0.1")


def _strata(split: Split) -> dict[str, list[int]] | None:
    """Indices by label, or None when stratifying is impossible (tokens, unlabelled). A label with one example
    is a group of one, which ``_quotas`` leaves outside the carve (SemEval-2010 Task 8 has such a label)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(split.examples):
        if not isinstance(ex, TextExample) or ex.label is None:
            return None
        groups[ex.label].append(i)
    return {label: groups[label] for label in sorted(groups)}


def _quotas(sizes: list[int], n: int, rng: np.random.Generator) -> list[int]:
    """Split ``n`` over groups in proportion to ``sizes`` (largest remainder, random ties).

    Groups keep at least one example outside the carve unless ``n`` needs it.
    """
    total = sum(sizes)
    exact = [n * s / total for s in sizes]
    quota = [math.floor(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda g: (quota[g] - exact[g], rng.random()))
    short = n - sum(quota)
    for g in order:
        if short and quota[g] < sizes[g] - 1:
            quota[g] += 1
            short -= 1
    while short:  # only when the groups are nearly all carved (fraction close to 1)
        for g in order:
            if short and quota[g] < sizes[g]:
                quota[g] += 1
                short -= 1
    return quota


def _carve(split: Split, n: int, rng: np.random.Generator, stratify: bool) -> tuple[list[int], list[int]]:
    """Choose ``n`` example indices of ``split``; returns (carved, rest), both sorted."""
    strata = _strata(split) if stratify else None
    if strata is None:
        chosen = rng.permutation(len(split))[:n].tolist()
    else:
        groups = list(strata.values())
        chosen = []
        for group, k in zip(groups, _quotas([len(g) for g in groups], n, rng)):
            chosen.extend(np.asarray(group)[rng.permutation(len(group))[:k]].tolist())
    taken = set(chosen)
    return sorted(taken), [i for i in range(len(split)) if i not in taken]


def _count(fraction: float, size: int, fraction_name: str, what: str, alternative: str) -> int:
    n = math.floor(fraction * size + 0.5)
    if n < 1:
        raise DataError(
            f"{fraction_name}={fraction} of {size} {what} examples leaves the carved split empty. "
            f"Fix: raise {fraction_name} (to at least {1 / size:.3g}) or {alternative}"
        )
    if n >= size:
        raise DataError(
            f"{fraction_name}={fraction} of {size} {what} examples leaves {what} empty. "
            f"Fix: lower {fraction_name} or {alternative}"
        )
    return n


def _subset(split: Split, indices: list[int], name: str, source: str, skipped: int = 0) -> Split:
    return Split(name, [split.examples[i] for i in indices], source, skipped)


def _carved_source(parent: Split, fraction: float, seed: int) -> str:
    return f"{parent.source} [carved {fraction * 100:g}%, seed {seed}]"


def _rng(seed: int, purpose: str) -> np.random.Generator:
    """The carve's own random stream (see ``_STREAM``)."""
    return np.random.default_rng([seed, _STREAM[purpose]])


def _check_fractions(validation_fraction: float, calibration_fraction: float, test_fraction: float) -> None:
    """Fail on a fraction outside its interval before anything is carved."""
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("calibration_fraction", calibration_fraction)
    _check_fraction("test_fraction", test_fraction, zero_ok=True)


def _train_carve_sizes(
    train: Split,
    validation: Split | None,
    test: Split | None,
    validation_fraction: float,
    test_fraction: float,
) -> tuple[int, int]:
    """(n_test, n_val) train examples to carve; fails before carving if a split would be empty."""
    n_test = 0
    if test is None and test_fraction > 0:
        n_test = _count(test_fraction, len(train), "test_fraction", "train", "give a test file")
    n_val = 0
    if validation is None:
        n_val = _count(
            validation_fraction,
            len(train),
            "validation_fraction",
            "train",
            "give a validation file",
        )
    if n_test + n_val >= len(train):
        raise DataError(
            f"test_fraction={test_fraction} and validation_fraction={validation_fraction} of "
            f"{len(train)} train examples leave train empty. Fix: lower these fractions"
        )
    return n_test, n_val


def _carve_test(
    train: Split, test: Split | None, n_test: int, test_fraction: float, seed: int, stratify: bool
) -> tuple[Split | None, Split]:
    """(test, rest of train): ``n_test`` train examples become test; unchanged when ``n_test`` is 0."""
    if not n_test:
        return test, train
    carved, rest = _carve(train, n_test, _rng(seed, "test"), stratify)
    test = _subset(train, carved, "test", _carved_source(train, test_fraction, seed))
    return test, _subset(train, rest, train.name, train.source, train.skipped)


def _carve_validation(
    train: Split,
    validation: Split | None,
    n_val: int,
    validation_fraction: float,
    seed: int,
    stratify: bool,
) -> tuple[Split, Split]:
    """(validation, rest of train): carve validation from train unless one was given."""
    if validation is not None:
        return validation, train
    carved, rest = _carve(train, n_val, _rng(seed, "validation"), stratify)
    # train keeps its source through the test carve, so this names the train file as given
    source = _carved_source(train, validation_fraction, seed)
    validation = _subset(train, carved, "validation", source)
    return validation, _subset(train, rest, train.name, train.source, train.skipped)


def _carve_calibration(
    validation: Split,
    calibration: Split | None,
    calibration_fraction: float,
    seed: int,
    stratify: bool,
) -> tuple[Split, Split]:
    """(calibration, rest of validation): carved from validation so it never overlaps train."""
    if calibration is not None:
        return calibration, validation
    n_cal = _count(
        calibration_fraction,
        len(validation),
        "calibration_fraction",
        "validation",
        "give a calibration file",
    )
    carved, rest = _carve(validation, n_cal, _rng(seed, "calibration"), stratify)
    source = _carved_source(validation, calibration_fraction, seed)
    calibration = _subset(validation, carved, "calibration", source)
    rest_of_validation = _subset(validation, rest, validation.name, validation.source, validation.skipped)
    return calibration, rest_of_validation


def _keep_train_share(train: Split, fraction: float, seed: int, stratify: bool) -> Split:
    """``fraction`` of ``train`` (seeded, stratified), or ``train`` itself when the fraction is 1."""
    if fraction == 1:
        return train
    n = max(1, math.floor(fraction * len(train) + 0.5))
    kept, _ = _carve(train, n, _rng(seed, "train"), stratify)
    return _subset(train, kept, train.name, f"{train.source} [kept {fraction * 100:g}%, seed {seed}]", train.skipped)


def make_splits(
    train: Split,
    validation: Split | None = None,
    calibration: Split | None = None,
    test: Split | None = None,
    *,
    seed: int,
    validation_fraction: float = 0.1,
    calibration_fraction: float = 0.5,
    test_fraction: float = 0.0,
    stratify: bool = True,
    extra: dict[str, Split] | None = None,
    train_fraction: float = 1.0,
) -> DataSplits:
    """Complete the splits, carving any missing one from another.

    - no ``test`` and ``test_fraction > 0``: ``test_fraction`` of ``train`` becomes test;
    - no ``validation``: ``validation_fraction`` of ``train`` becomes validation (both
      fractions count examples of the train split as given);
    - no ``calibration``: ``calibration_fraction`` of validation becomes calibration,
      so that calibration never overlaps train or validation;
    - ``train_fraction < 1``: after those carves, only that share of what is left of train is kept (a
      learning curve, or a CPU budget); the rest is dropped, not moved to another split.

    Carving is seeded and deterministic, keeps file order within each split, and is
    stratified by label for text classification when ``stratify`` and every class has
    at least 2 examples (otherwise plain random).

    Parameters
    ----------
    train, validation, calibration, test : Split
        The splits read from files (``None`` where not given).
    seed : int
        Seeds the numpy Generator of each carve.
    validation_fraction, calibration_fraction : float in (0, 1)
    test_fraction : float in [0, 1)
        0 means no test split unless one is given.
    train_fraction : float in (0, 1]
        Share of the remaining train split kept (stratified like the carves).
    stratify : bool
    extra : dict of str to Split, optional
        Further evaluation splits, passed through.

    Returns
    -------
    DataSplits
        Carved splits are named ``validation`` / ``calibration`` / ``test`` and have a
        source like ``"train.jsonl [carved 10%, seed 13]"``.

    Raises
    ------
    ConfigError
        A fraction is outside its interval.
    DataError
        A carve would leave a split empty; the message names the fraction to change.
    """
    _check_fractions(validation_fraction, calibration_fraction, test_fraction)
    if not 0 < train_fraction <= 1:
        raise ConfigError(
            f"data.train_fraction must be in (0, 1]. Got {train_fraction}. Fix: e.g. --set data.train_fraction=0.5"
        )
    n_test, n_val = _train_carve_sizes(train, validation, test, validation_fraction, test_fraction)
    test, train = _carve_test(train, test, n_test, test_fraction, seed, stratify)
    validation, train = _carve_validation(train, validation, n_val, validation_fraction, seed, stratify)
    calibration, validation = _carve_calibration(validation, calibration, calibration_fraction, seed, stratify)
    train = _keep_train_share(train, train_fraction, seed, stratify)
    return DataSplits(train, validation, calibration, test, dict(extra or {}))
