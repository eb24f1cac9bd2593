"""Score generated answers with every estimator and measure how well each detects wrong answers.

For each question (or document to summarise): one :class:`~caveat.generate.sampling.Generation` (greedy +
K samples, one ``generate`` call, cached), then every requested estimator on it. Meaning clusters and the
samples' similarity graph are computed once per question and their cost is charged to every estimator that
uses them. A greedy answer is judged under every correctness rule; the metrics use the chosen one, and the
output says which. A greedy summary has a quality (ROUGE-L, :mod:`caveat.generate.quality`) instead, and
the metrics are prediction-rejection ratios against it (:mod:`caveat.generate.rejection`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from caveat.generate import prompts
from caveat.generate.correctness import RULES, get_rule, judge
from caveat.generate.data import Question
from caveat.generate.documents import Document
from caveat.generate.estimators import SCORES_VERSION, Context, get_estimator
from caveat.generate.internals import internals_of
from caveat.generate.metrics import estimator_metrics, risk_coverage
from caveat.generate.quality import get_qualities
from caveat.generate.rejection import prr_quality, quality_bootstrap_interval, quality_coverage, quality_metrics
from caveat.generate.sampling import Generation, SampleCache, Sampler, SamplingConfig
from caveat.progress import phase

# XSum's reference summaries (1,000 test articles) run 21 words on average, 39 at the 99th percentile, 60 at
# most: about 28, 52 and 80 tokens. 64 new tokens hold one long sentence (lm-polygraph uses 42) and cap the
# cost of a model that rambles.
SUMMARY_MAX_NEW_TOKENS = 64


@dataclass
class Scored:
    """Generations of a question (or document) set and each estimator's scores on them.

    Attributes
    ----------
    questions : (N,) the questions (or documents).
    generations : (N,) their generations.
    scores : estimator name -> (N,) uncertainty scores.
    seconds : estimator name -> (N,) seconds each score took beyond sampling (meaning clusters included).
    sampling_seconds : (N,) wall time of each question's generate call (0 for cache hits).
    """

    questions: list[Question | Document]
    generations: list[Generation]
    scores: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]
    sampling_seconds: np.ndarray

    @property
    def answers(self) -> list[str]:
        return [g.greedy.text for g in self.generations]


def score_questions(
    questions: Sequence[Question | Document],
    sampler: Sampler,
    estimators: Sequence[str],
    *,
    context: Context | None = None,
    template: str | None = None,
) -> Scored:
    """Generate once per question (or document) and compute every estimator on the shared generation.

    Estimators that read the model's internals (hidden states, attentions) make ``sampler`` keep them; their
    extra cost is then inside ``sampling_seconds``, not in the estimators' own seconds.
    """
    ctx = context or Context(lm=sampler.lm)
    found = [get_estimator(n) for n in estimators]
    sampler.require(internals_of(need for e in found for need in e.needs))  # kept from the same generate call
    shared_by = {"meaning": Context.meanings, "similarity": Context.similarity}  # need -> what computes it
    used = [need for need in shared_by if any(need in e.needs for e in found)]
    scores = {e.name: np.zeros(len(questions)) for e in found}
    seconds = {e.name: np.zeros(len(questions)) for e in found}
    gens, sampling = [], np.zeros(len(questions))
    with phase("answer and score questions", total=len(questions)) as bar:
        for i, q in enumerate(questions):
            message = prompts.message(q, template=template)
            g = sampler(sampler.lm.prompt(message))
            gens.append(g)
            sampling[i] = 0.0 if g.cached else g.seconds
            shared = {}
            for need in used:
                start = time.perf_counter()
                shared_by[need](ctx, g, message)
                shared[need] = time.perf_counter() - start
            for e in found:
                start = time.perf_counter()
                scores[e.name][i] = e.fn(g, ctx, message)
                seconds[e.name][i] = time.perf_counter() - start + sum(shared.get(need, 0.0) for need in e.needs)
            bar.advance()
    return Scored(list(questions), gens, scores, seconds, sampling)


def evaluate_generation(
    questions: Sequence[Question],
    lm,
    *,
    sampling: SamplingConfig | None = None,
    estimators: Sequence[str],
    rule: str = "contains",
    cache: SampleCache | None = None,
    context: Context | None = None,
    template: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Greedy accuracy under every rule, and per estimator: AUROC and PRR with bootstrap intervals,
    AURC, accuracy at 50/80% coverage, a risk-coverage curve and the cost per question.

    Returns a JSON-able dict; ``records`` holds each question's answer, correctness and scores.
    """
    sampling = sampling or SamplingConfig()
    judged = get_rule(rule)
    sampler = Sampler(lm, sampling, cache=cache)
    scored = score_questions(questions, sampler, estimators, context=context, template=template)
    correct = {r.name: judge(scored.answers, scored.questions, r) for r in (get_rule(n) for n in RULES.names())}
    correct[judged.name] = judge(scored.answers, scored.questions, judged)
    errors = ~correct[judged.name]
    both = 0 < errors.sum() < len(errors)
    out = {
        "task": "qa",
        "model": lm.name,
        "n": len(questions),
        "rule": judged.name,
        "rule_description": judged.describe(),
        "accuracy": {name: float(c.mean()) for name, c in correct.items()},
        **_run_facts(scored, sampler, sampling),
        "estimators": {},
    }
    for name, s in scored.scores.items():
        row = estimator_metrics(s, errors, n_boot=n_boot, seed=seed) if both else {"n": len(s)}
        if both:
            row["risk_coverage"] = risk_coverage(s, errors)
        row["seconds_per_question"] = float(scored.seconds[name].mean())
        out["estimators"][name] = row
    if not both:
        out["warning"] = (
            f"every greedy answer is {'wrong' if errors.all() else 'right'} under {judged.name}; "
            "error-detection metrics need both outcomes: use more questions or another rule"
        )
    out["records"] = [
        {
            "id": q.id,
            "question": q.question,
            "answer": g.greedy.text,
            "references": list(q.answers),
            "correct": bool(not errors[i]),
            "scores": {n: float(s[i]) for n, s in scored.scores.items()},
            "samples": [a.text for a in g.samples],
        }
        for i, (q, g) in enumerate(zip(scored.questions, scored.generations))
    ]
    return out


def _run_facts(scored: Scored, sampler: Sampler, sampling: SamplingConfig) -> dict:
    """What both tasks report about the run: sampling settings, generate calls, score names, cost."""
    generated = scored.sampling_seconds[scored.sampling_seconds > 0]
    return {
        "sampling": asdict(sampling),
        "generate_calls": sampler.generate_calls,
        "scores_version": SCORES_VERSION,  # what the estimators' names mean (estimators.py)
        "seconds_per_question": {
            "sampling": float(np.mean(generated)) if len(generated) else None,
            "cached": int(len(scored.questions) - len(generated)),
        },
    }


def evaluate_summaries(
    documents: Sequence[Document],
    lm,
    *,
    sampling: SamplingConfig | None = None,
    estimators: Sequence[str],
    quality: str | Sequence[str] = "rougeL",
    cache: SampleCache | None = None,
    context: Context | None = None,
    template: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Mean quality of the greedy summaries, and per estimator: PRR against the quality with a bootstrap
    interval, mean quality at 50/80% coverage, a quality-coverage curve and the cost per document.

    Parameters
    ----------
    quality : the measures (:func:`~caveat.generate.quality.get_qualities`), e.g. ``"rougeL,embedding"``;
        the first is the one the metrics use, the others get a PRR each under ``by_quality``.
    sampling : default ``SamplingConfig(max_new_tokens=SUMMARY_MAX_NEW_TOKENS)``.

    Returns a JSON-able dict; ``records`` holds each document's summary, reference, quality and scores.
    """
    sampling = sampling or SamplingConfig(max_new_tokens=SUMMARY_MAX_NEW_TOKENS)
    ctx = context or Context(lm=lm)
    measures = get_qualities(quality, encoder=getattr(ctx.equivalence, "encoder", None))
    sampler = Sampler(lm, sampling, cache=cache)
    scored = score_questions(documents, sampler, estimators, context=ctx, template=template)
    references = [d.summary for d in scored.questions]
    qualities = {m.name: m(scored.answers, references) for m in measures}  # name -> (N,)
    primary = measures[0].name
    q = qualities[primary]
    varies = bool(np.ptp(q) > 0)
    out = {
        "task": "summarise",
        "model": lm.name,
        "n": len(documents),
        "quality": primary,
        "quality_description": measures[0].describe(),
        "mean_quality": {name: float(v.mean()) for name, v in qualities.items()},
        **_run_facts(scored, sampler, sampling),
        "estimators": {},
    }
    boot = {"n_boot": n_boot, "seed": seed}
    for name, s in scored.scores.items():
        row = quality_metrics(s, q, **boot) if varies else {"n": len(s)}
        if varies:
            row["quality_coverage"] = quality_coverage(s, q)
        others = {m: v for m, v in qualities.items() if m != primary and np.ptp(v) > 0}
        if others:
            row["by_quality"] = {
                m: {"prr": prr_quality(s, v), "prr_ci": list(quality_bootstrap_interval(prr_quality, s, v, **boot))}
                for m, v in others.items()
            }
        row["seconds_per_question"] = float(scored.seconds[name].mean())
        out["estimators"][name] = row
    if not varies:
        out["warning"] = (
            f"every greedy summary has {primary} {q[0]:g}; prediction-rejection metrics need qualities that "
            "differ: use more documents or another quality measure"
        )
    out["records"] = [
        {
            "id": d.id,
            "answer": g.greedy.text,
            "references": [d.summary],
            "quality": {m: float(v[i]) for m, v in qualities.items()},
            "scores": {n: float(s[i]) for n, s in scored.scores.items()},
            "samples": [a.text for a in g.samples],
        }
        for i, (d, g) in enumerate(zip(scored.questions, scored.generations))
    ]
    return out
