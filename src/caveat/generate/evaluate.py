"""Score generated answers with every estimator and measure how well each detects wrong answers.

For each question: one :class:`~caveat.generate.sampling.Generation` (greedy + K samples, one
``generate`` call, cached), then every requested estimator on it. Meaning clusters and the samples'
similarity graph are computed once per question and their cost is charged to every estimator that uses
them. The greedy answer is judged under every correctness rule; the metrics use the chosen one, and the
output says which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from caveat.generate import prompts
from caveat.generate.correctness import RULES, get_rule, judge
from caveat.generate.data import Question
from caveat.generate.estimators import SCORES_VERSION, Context, get_estimator
from caveat.generate.internals import internals_of
from caveat.generate.metrics import estimator_metrics, risk_coverage
from caveat.generate.sampling import Generation, SampleCache, Sampler, SamplingConfig
from caveat.progress import phase


@dataclass
class Scored:
    """Generations of a question set and each estimator's scores on them.

    Attributes
    ----------
    questions : (N,) the questions.
    generations : (N,) their generations.
    scores : estimator name -> (N,) uncertainty scores.
    seconds : estimator name -> (N,) seconds each score took beyond sampling (meaning clusters included).
    sampling_seconds : (N,) wall time of each question's generate call (0 for cache hits).
    """

    questions: list[Question]
    generations: list[Generation]
    scores: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]
    sampling_seconds: np.ndarray

    @property
    def answers(self) -> list[str]:
        return [g.greedy.text for g in self.generations]


def score_questions(
    questions: Sequence[Question],
    sampler: Sampler,
    estimators: Sequence[str],
    *,
    context: Context | None = None,
    template: str | None = None,
) -> Scored:
    """Generate once per question and compute every estimator on the shared generation.

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
    generated = scored.sampling_seconds[scored.sampling_seconds > 0]
    out = {
        "model": lm.name,
        "n": len(questions),
        "rule": judged.name,
        "rule_description": judged.describe(),
        "accuracy": {name: float(c.mean()) for name, c in correct.items()},
        "sampling": asdict(sampling),
        "generate_calls": sampler.generate_calls,
        "scores_version": SCORES_VERSION,  # what the estimators' names mean (estimators.py)
        "seconds_per_question": {
            "sampling": float(np.mean(generated)) if len(generated) else None,
            "cached": int(len(questions) - len(generated)),
        },
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
