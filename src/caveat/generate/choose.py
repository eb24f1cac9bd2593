"""Choose the estimator on the user's own calibration questions without spending the risk bound's data.

Which estimator tells wrong answers apart best changes with the data set, the model and the correctness
rule, so a name fixed in advance is often not the best one here. :func:`choose_estimator` splits the
calibration questions into two disjoint halves by a seeded permutation: on the *selection* half every
candidate is ranked; the threshold of the chosen one is then fitted on the *threshold* half alone
(:meth:`caveat.generate.policy.GenerationPolicy.fit_auto`). The threshold half played no part in the
choice, so, given the choice, it is a fresh calibration set for a fixed estimator and Learn-then-Test's
guarantee holds as for a named estimator. Fitting the threshold on questions the choice also saw would
not: the choice favours the estimator whose scores happen to look best on exactly those questions.

Criterion. A policy is worth the questions it answers under the bound, so candidates are ranked by the
coverage that the *same* procedure (:class:`~caveat.decide.risk.RiskControlled`, same target, delta and
start points) certifies on the selection half; ties (often all zero when the half is small or the target
is hard) are broken by the AUROC of the score against errors, then by the order the candidates were
given. AUROC alone ranks the whole ordering, while the policy only uses its most confident end: an
estimator can separate errors well on average and still put a few confident wrong answers first, which
is what stops the certified threshold early.

The cost: the threshold is fitted on half the calibration questions, so the certified coverage is lower
(the bound is wider) than one fitted on all of them with an estimator named in advance. A user who knows
which estimator to use should name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import error_detection_auroc
from caveat.generate.estimators import ESTIMATORS, get_estimator, parse_estimators

# Start points of the fallback procedure for generation (RiskControlled's ``starts``). Generated answers are
# wrong often (65% of SmolLM2's XQuAD answers), so even the most confident few hold errors; a start's fixed
# sequence ends at its first unrejected threshold, and the two starts used before (6 and 13 answered questions at
# target 0.5) ended there, certifying nothing on most 200-question draws a usable score allows. Four starts,
# their sizes doubling (about 6, 13, 28 and 57 answered at target 0.5, delta 0.05), each own delta / 4: the later
# ones begin where the error rate has settled. Planted high-error draws (tests/generate/test_policy.py): median
# certified coverage 0.07 -> 0.21 at AUROC 0.78, with the guarantee kept.
STARTS = 4
CRITERION = "certified coverage at the target risk on the selection half; ties by AUROC against errors"


@dataclass(frozen=True)
class Candidate:
    """One candidate's figures on the selection half.

    Attributes
    ----------
    name : the estimator.
    coverage : share of the selection half answered at the threshold certified there (0: none certified).
    auroc : AUROC of the score for detecting errors there (None when the half has one outcome only).
    """

    name: str
    coverage: float
    auroc: float | None


@dataclass(frozen=True)
class Choice:
    """The chosen estimator, every candidate's figures (best first), the two halves and why.

    Attributes
    ----------
    chosen : the estimator ranked first.
    candidates : every candidate, best first.
    selection : (N_sel,) indices of the questions the choice was made on.
    threshold_half : (N_fit,) indices of the others, the only ones the threshold may be fitted on.
    seed : seed of the split.
    reason : the choice in a sentence.
    """

    chosen: str
    candidates: list[Candidate]
    selection: np.ndarray
    threshold_half: np.ndarray
    seed: int
    reason: str

    def state(self) -> dict:
        """JSON-able record of the choice (the halves as sizes, the split reproducible from ``seed``)."""
        return {
            "chosen": self.chosen,
            "criterion": CRITERION,
            "reason": self.reason,
            "seed": self.seed,
            "n_selection": len(self.selection),
            "n_threshold": len(self.threshold_half),
            "candidates": [asdict(c) for c in self.candidates],
        }


def default_candidates(samples: int) -> list[str]:
    """Every estimator the samples allow that does not ask the model again (``p_true`` and ``verbalised``
    cost one more model call per question)."""
    return [n for n in parse_estimators("all", samples=samples) if "lm" not in ESTIMATORS.get(n).needs]


def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of ``range(n)`` by a seeded permutation: (selection, threshold), each sorted.

    The selection half gets ``n // 2`` questions, the threshold half the rest.
    """
    order = np.random.default_rng(seed).permutation(n)  # (n,)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def check_candidates(candidates: Sequence[str], *, samples: int | None = None) -> list[str]:
    """Validate candidate names (registered, computable with ``samples`` when given); at least two, no repeats."""
    names = [c.strip() for c in candidates if c.strip()]
    if len(names) < 2:
        raise ConfigError(
            f"choosing an estimator needs at least two {{candidates}}; got {names!r}. Name one estimator "
            "directly to use it, or list several, e.g. msp,mean_token_entropy,rauq",
            fields=("candidates",),
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{{candidates}} names {', '.join(repeated)} more than once", fields=("candidates",))
    if samples is None:
        for n in names:
            get_estimator(n)  # unknown names: the registry's error lists the known ones
        return names
    return parse_estimators(names, samples=samples)


def _scores_of(scores: Mapping[str, object], name: str, n: int) -> np.ndarray:
    if name not in scores:
        raise ConfigError(
            f"candidate {name!r} has no scores (scored: {', '.join(sorted(scores)) or 'none'}); score the "
            f"calibration questions with it too (score_questions(..., estimators=[..., {name!r}])) or drop it "
            "from {candidates}",
            fields=("candidates",),
        )
    s = np.asarray(scores[name], dtype=np.float64)
    if s.shape != (n,):
        raise DataError(f"scores of candidate {name!r} must have shape ({n},) to match errors; got {s.shape}")
    if np.isnan(s).any():
        raise DataError(
            f"candidate {name!r} has no score (nan) for question {int(np.flatnonzero(np.isnan(s))[0])}; "
            "drop it from {candidates} or fix how it is computed",
            fields=("candidates",),
        )
    return s


def _auroc(s: np.ndarray, e: np.ndarray) -> float | None:
    return error_detection_auroc(s, e) if e.any() and not e.all() else None


def _reason(ranked: list[Candidate], n_sel: int, n_fit: int, guarantee: str) -> str:
    """Why ``ranked[0]`` won, in a sentence."""
    best, runner = ranked[0], ranked[1]
    fitted = f"its threshold was then fitted on the other {n_fit} questions only"
    if best.coverage == 0:
        by = f"the highest AUROC against errors ({best.auroc:.3g})" if best.auroc is not None else "listed first"
        return (
            f"{best.name} was chosen: no candidate certifies {guarantee} on the {n_sel} selection questions, "
            f"so it was ranked by AUROC: {by}; {fitted}"
        )
    answers = f"on {n_sel} selection questions it answers {best.coverage:.1%} with {guarantee}"
    if runner.coverage < best.coverage:
        why = f"{answers}, more than the runner-up {runner.name} ({runner.coverage:.1%})"
    elif best.auroc is not None and runner.auroc is not None:
        auroc = f"AUROC {best.auroc:.3g} vs {runner.auroc:.3g}"
        why = f"{answers}, as does {runner.name}, and separates errors better ({auroc})"
    else:
        why = f"{answers}, as does {runner.name}, and is listed first"
    return f"{best.name} was chosen: {why}; {fitted}"


def choose_estimator(
    scores: Mapping[str, object],
    errors: object,
    *,
    candidates: Sequence[str],
    target_risk: float,
    delta: float = 0.05,
    seed: int = 0,
    starts: int = STARTS,
) -> Choice:
    """Rank ``candidates`` on a seeded half of the calibration questions; keep the other half for the threshold.

    Parameters
    ----------
    scores : each candidate's (N,) uncertainty scores (higher = more uncertain), by name.
    errors : (N,) bool, True where the answer was wrong.
    candidates : the estimator names to choose from (at least two).
    target_risk, delta, starts : the risk control the policy will be fitted with; the selection half is ranked
        by the coverage the same procedure certifies there.
    seed : seed of the split into halves.

    Returns
    -------
    Choice
        ``chosen``, ``candidates`` best first, and the two halves as index arrays; fit the threshold on
        ``threshold_half`` only.
    """
    names = check_candidates(candidates)
    e = np.asarray(errors)
    if e.ndim != 1 or len(e) < 2:
        raise DataError(f"errors must be a 1-D array of at least 2 calibration questions; got shape {e.shape}")
    if e.dtype != bool:
        if not np.isin(e, (0, 1)).all():
            raise DataError("errors must be bool (True = the answer was wrong) or 0/1")
        e = e.astype(bool)
    n = len(e)
    columns = {name: _scores_of(scores, name, n) for name in names}  # every name checked before any work
    sel, fit = split_halves(n, seed)
    figures = []
    for name in names:
        s = columns[name][sel]  # (N_sel,)
        risk = RiskControlled(target_risk, delta, score=name, starts=starts, allow_empty=True).calibrate(s, e[sel])
        figures.append(Candidate(name, float(risk.coverage_calibration), _auroc(s, e[sel])))
    order = sorted(
        range(len(names)),
        key=lambda i: (-figures[i].coverage, -(figures[i].auroc if figures[i].auroc is not None else -1.0), i),
    )
    ranked = [figures[i] for i in order]
    guarantee = RiskControlled(target_risk, delta).guarantee
    return Choice(ranked[0].name, ranked, sel, fit, seed, _reason(ranked, len(sel), len(fit), guarantee))
