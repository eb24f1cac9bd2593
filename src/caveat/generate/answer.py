"""Answer one question: the greedy answer, K samples, each estimator's uncertainty and, given a policy,
answer or abstain. ``caveat generate`` and the service's ``POST /v1/generate`` both call this."""

from __future__ import annotations

import time
from collections.abc import Sequence

from caveat.generate import prompts
from caveat.generate.data import Question
from caveat.generate.estimators import Context, get_estimator, parse_estimators
from caveat.generate.internals import internals_of
from caveat.generate.policy import GenerationPolicy
from caveat.generate.sampling import Sampler, SamplingConfig

NO_POLICY = (
    "no policy given: fit one with caveat generate-calibrate and pass it (caveat generate --policy, "
    "caveat serve --generation-policy) to answer only under a risk bound"
)


def ask(question: str, context: str | None = None, *, template: str | None = None) -> str:
    """The user message for a question without reference answers (see :func:`prompts.message`)."""
    return prompts.message(Question("ask", question, ("",), context), template=template)


def estimator_names(
    spec: str | Sequence[str] | None, *, samples: int, policy: GenerationPolicy | None = None
) -> list[str]:
    """``parse_estimators(spec)``, plus the policy's estimator when missing: its decision needs that score."""
    names = parse_estimators(spec, samples=samples)
    if policy is not None and policy.estimator not in names:
        names.append(policy.estimator)
    return names


def answer_question(
    lm,
    sampling: SamplingConfig,
    message: str,
    estimators: Sequence[str],
    context: Context,
    policy: GenerationPolicy | None = None,
) -> dict:
    """Generate once, score with every estimator, decide.

    Parameters
    ----------
    lm : the :class:`~caveat.generate.lm.LanguageModel` (with a policy: the one it was calibrated on).
    sampling : the sampling settings (with a policy: ``policy.sampling``, or its threshold means nothing).
    message : the user message (:func:`ask`).
    estimators : estimator names (:func:`estimator_names`); with a policy they include its estimator.
    context : what the estimators share (meaning clusters, the model for further questions).
    policy : a fitted :class:`GenerationPolicy`, or None (no decision).

    Returns
    -------
    ``{model, answer, uncertainty: {name: score}, samples: [text], decision, reason, estimator, seconds}``;
    higher scores = more uncertain; ``decision`` is "answer"/"abstain" under a policy, else None;
    ``estimator`` is the one the decision used; ``seconds`` is the wall time of generating and scoring.
    """
    start = time.perf_counter()
    found = [get_estimator(n) for n in estimators]
    internals = internals_of(need for e in found for need in e.needs)
    g = Sampler(lm, sampling, internals=internals)(lm.prompt(message))
    uncertainty = {e.name: e.fn(g, context, message) for e in found}
    out = {
        "model": lm.name,
        "answer": g.greedy.text,
        "uncertainty": uncertainty,
        "samples": [s.text for s in g.samples],
    }
    if policy is not None:
        out.update(policy.decide(uncertainty[policy.estimator]), estimator=policy.estimator)
    else:
        out.update(decision=None, reason=NO_POLICY, estimator=None)
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out
