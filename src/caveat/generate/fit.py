"""Fit the single-pass scorers (correctness probe, semantic-entropy probe, Mahalanobis and robust densities).

Each question is answered once (greedy, plus K samples when the semantic-entropy probe is wanted), the hidden
states of the greedy pass kept (:mod:`caveat.generate.internals`), the greedy answer judged, and:

- the correctness probe learns P(wrong) on the (layer, position) with the best held-out AUROC;
- with K >= 2 samples, the semantic-entropy probe learns P(semantic entropy > its best split) the same way;
- the stacked probe combines the correctness probe's out-of-fold log-odds with the greedy answer's token
  statistics (:data:`STACK_INPUTS`) in a second logistic regression;
- the Mahalanobis density is one Gaussian over every generation's hidden state at the correctness probe's
  layer and position, and the robust density (RDE) a minimum-covariance-determinant Gaussian over their kernel
  principal components there.

Used afterwards as ``probe:DIR``, ``stacked:DIR``, ``sep:DIR``, ``mahalanobis:DIR`` and ``rde:DIR``, all from one
greedy pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np

from caveat.errors import DataError
from caveat.generate.correctness import get_rule, judge
from caveat.generate.data import Question
from caveat.generate.estimators import Context
from caveat.generate.evaluate import score_questions
from caveat.generate.internals import POSITIONS, feature_stack
from caveat.generate.probes import (
    LinearProbe,
    ProbeSet,
    best_split,
    choose_feature,
    choose_l2,
    held_out_auroc,
    logit,
    out_of_fold,
)
from caveat.generate.sampling import SampleCache, Sampler, SamplingConfig
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.rde import RobustDensity

STACK_INPUTS = ("msp", "mean_nll", "mean_token_entropy")  # from the greedy answer's own token log-probs


def fit_probes(
    questions: Sequence[Question],
    lm,
    *,
    sampling: SamplingConfig,
    rule: str = "contains",
    context: Context | None = None,
    template: str | None = None,
    cache: SampleCache | None = None,
    folds: int = 5,
    l2: float = 1.0,
    seed: int = 0,
) -> tuple[ProbeSet, dict]:
    """Generate, judge and fit; returns the :class:`ProbeSet` and a JSON-able summary.

    ``sampling.samples`` >= 2 also fits the semantic-entropy probe (its targets need the samples; using it
    afterwards does not).
    """
    sampler = Sampler(lm, sampling, cache=cache, internals={"hidden_states"})
    wants_se = sampling.samples >= 2
    names = [*STACK_INPUTS, "semantic_entropy"] if wants_se else list(STACK_INPUTS)
    scored = score_questions(questions, sampler, names, context=context, template=template)
    judged = get_rule(rule)
    errors = ~judge(scored.answers, scored.questions, judged)
    features = {pos: feature_stack([g.extra for g in scored.generations], pos) for pos in POSITIONS}  # (N, L+1, D)
    probes, summary = fit_probe_set(
        features,
        errors,
        semantic_entropy=scored.scores["semantic_entropy"] if wants_se else None,
        token_scores={n: scored.scores[n] for n in STACK_INPUTS},
        folds=folds,
        l2=l2,
        seed=seed,
    )
    summary["rule"] = judged.name
    probes.meta = {"model": lm.name, "sampling": asdict(sampling), "rule": judged.name, "template": template}
    return probes, summary


def fit_probe_set(
    features: Mapping[str, np.ndarray],
    errors: np.ndarray,
    *,
    semantic_entropy: np.ndarray | None = None,
    token_scores: Mapping[str, np.ndarray] | None = None,
    folds: int = 5,
    l2: float = 1.0,
    tune_l2: bool = True,
    seed: int = 0,
) -> tuple[ProbeSet, dict]:
    """Fit the probes on hidden states already kept: the arrays half of :func:`fit_probes`.

    Parameters
    ----------
    features : position -> (N, L + 1, D) hidden states of every layer
        (:func:`~caveat.generate.internals.feature_stack` of the generations' ``extra``).
    errors : (N,) bool, the greedy answer is wrong.
    semantic_entropy : (N,) semantic entropy of K samples per question; fits the semantic-entropy probe too.
    token_scores : name -> (N,) scores of estimators that need only the greedy answer (:data:`STACK_INPUTS`);
        fits the stacked probe on them and the correctness probe's out-of-fold log-odds.
    l2 : the penalty the layer and position are chosen with; ``tune_l2`` then picks the correctness probe's
        penalty at that layer and position from :data:`~caveat.generate.probes.L2_GRID` by held-out AUROC.

    Returns the :class:`ProbeSet` (its ``meta`` empty: the caller records the model and settings) and a summary.
    """
    errors = np.asarray(errors).astype(bool)
    probes = ProbeSet()
    summary: dict = {"n": len(errors), "error_rate": float(errors.mean())}
    layer, position, table = choose_feature(features, errors, folds=folds, seed=seed, l2=l2)
    x = features[position][:, layer]  # (N, D)
    k = min(folds, int(errors.sum()), int((~errors).sum()))
    penalty, by_l2 = choose_l2(x, errors, folds=k, seed=seed) if tune_l2 else (l2, {f"{l2:g}": table[position][layer]})
    probe = LinearProbe(l2=penalty).fit(x, errors)
    probes.add("correctness", probe, layer=layer, position=position, l2=penalty, held_out_auroc=by_l2[f"{penalty:g}"])
    summary["correctness"] = {"layer": layer, "position": position, "held_out_auroc": table, "l2": by_l2}

    if token_scores is not None:
        names = list(token_scores)
        columns = [np.asarray(token_scores[n], dtype=np.float64) for n in names]
        if any(c.shape != errors.shape for c in columns):
            raise DataError(f"token_scores must each hold {len(errors)} scores, one per generation")
        oof = logit(out_of_fold(x, errors, folds=k, seed=seed, l2=penalty))  # (N,): scores of unseen questions
        z = np.column_stack([oof, *columns])  # (N, 1 + len(names))
        stacked = LinearProbe(l2=1.0).fit(z, errors)
        cv = held_out_auroc(z, errors, folds=k, seed=seed + 1, l2=1.0)
        probes.add("stacked", stacked, layer=layer, position=position, inputs=names, held_out_auroc=cv)
        summary["stacked"] = {"inputs": names, "held_out_auroc": cv}

    density = Mahalanobis().fit(features[position][:, layer], np.zeros(len(errors), dtype=int))
    probes.add("mahalanobis", density, layer=layer, position=position)
    probes.add("rde", RobustDensity(seed=seed).fit(features[position][:, layer]), layer=layer, position=position)

    if semantic_entropy is not None:
        entropy = np.asarray(semantic_entropy, dtype=np.float64)
        threshold = best_split(entropy)
        high = entropy > threshold
        layer, position, table = choose_feature(features, high, folds=folds, seed=seed, l2=l2)
        sep = LinearProbe(l2=l2).fit(features[position][:, layer], high)
        probes.add(
            "semantic_entropy",
            sep,
            layer=layer,
            position=position,
            threshold=threshold,
            held_out_auroc=table[position][layer],
        )
        summary["semantic_entropy"] = {
            "layer": layer,
            "position": position,
            "threshold": threshold,
            "high_share": float(high.mean()),
            "held_out_auroc": table,
        }
    return probes, summary
