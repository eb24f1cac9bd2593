"""``caveat generate-calibrate``: a risk-controlled threshold on one estimator of generated answers (or one chosen
on the calibration questions), checked on held-out questions."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer

from caveat.cli.common import emit
from caveat.cli.generate import (
    Cache,
    Data,
    DataSeed,
    GgufFile,
    Lm,
    MaxExamples,
    MaxNew,
    Nli,
    Rule,
    Samples,
    Seed,
    Temperature,
    Template,
    Threshold,
    TopK,
    TopP,
    _cache,
    _context,
    _sampling,
)
from caveat.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("generate-calibrate")(generate_calibrate_command)


def generate_calibrate_command(
    data: Data,
    out: Annotated[Path, typer.Option(help="Where to write the policy (JSON).")],
    estimator: Annotated[
        str,
        typer.Option(
            help="The estimator to threshold, or 'auto': choose among --candidates on half the calibration "
            "questions and fit the threshold on the other half (an honest bound, fitted on fewer questions)."
        ),
    ] = "semantic_entropy",
    candidates: Annotated[
        str | None,
        typer.Option(
            help="With --estimator auto: comma-separated estimators to choose from (default: every one the "
            "samples allow that does not ask the model again)."
        ),
    ] = None,
    target_risk: Annotated[float, typer.Option(help="Bound on the error rate of answered questions.")] = 0.3,
    delta: Annotated[float, typer.Option(help="Allowed probability that the bound fails.")] = 0.05,
    holdout: Annotated[
        float, typer.Option(help="Share of the questions kept out of calibration to check the bound on.")
    ] = 0.5,
    max_examples: MaxExamples = None,
    data_seed: DataSeed = 0,
    lm: Lm = "default",
    gguf_file: GgufFile = None,
    samples: Samples = 8,
    max_new_tokens: MaxNew = 32,
    temperature: Temperature = 0.5,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    template: Template = None,
    rule: Rule = "contains",
    meaning_threshold: Threshold = 0.9,
    nli_model: Nli = None,
    cache: Cache = None,
) -> None:
    """Fit a risk-controlled threshold: answer only where P(wrong) among answered questions is bounded."""
    from caveat.generate.correctness import get_rule, judge
    from caveat.generate.data import read_questions
    from caveat.generate.evaluate import score_questions
    from caveat.generate.lm import load_lm
    from caveat.generate.policy import GenerationPolicy
    from caveat.generate.sampling import Sampler

    if not 0 <= holdout < 1:
        raise ConfigError(f"--holdout must lie in [0, 1); got {holdout}. E.g. 0.5 checks the bound on half")
    auto = estimator == "auto"
    cfg = _sampling(samples, max_new_tokens, temperature, top_k, top_p, seed)
    names = _estimator_names(estimator, candidates, cfg.samples)
    questions = read_questions(data, limit=max_examples, seed=data_seed if max_examples else None)
    random.Random(data_seed).shuffle(questions)
    n_check = round(holdout * len(questions))
    model = load_lm(lm, gguf_file=gguf_file)
    scored = score_questions(
        questions,
        Sampler(model, cfg, cache=_cache(cache)),
        names,
        context=_context(model, meaning_threshold, nli_model),
        template=template,
    )
    errors = ~judge(scored.answers, questions, get_rule(rule))
    cal = slice(n_check, None)
    settings = {
        "lm": model.name,
        "sampling": cfg,
        "rule": get_rule(rule).name,
        "target_risk": target_risk,
        "delta": delta,
        "template": template,
        "meaning": {"threshold": meaning_threshold, "nli_model": nli_model},
    }
    if auto:  # chosen on one half of the calibration questions, thresholded on the other
        cal_scores = {n: v[cal] for n, v in scored.scores.items()}
        policy = GenerationPolicy.fit_auto(cal_scores, errors[cal], candidates=names, seed=data_seed, **settings)
    else:
        policy = GenerationPolicy.fit(scored.scores[estimator][cal], errors[cal], estimator=estimator, **settings)
    policy.save(out)
    emit(_summary(policy, out, scored.scores[policy.estimator], errors, n_check))


def _estimator_names(estimator: str, candidates: str | None, samples: int) -> list[str]:
    """The estimators to score: the one named, or with ``auto`` the candidates to choose among."""
    from caveat.generate.choose import check_candidates, default_candidates
    from caveat.generate.estimators import parse_estimators

    if estimator != "auto":
        if candidates is not None:
            raise ConfigError(f"--candidates is for --estimator auto; got --estimator {estimator}. Drop one of them")
        return parse_estimators([estimator], samples=samples)
    return (
        default_candidates(samples) if candidates is None else check_candidates(candidates.split(","), samples=samples)
    )


def _summary(policy, out: Path, score, errors, n_check: int) -> dict:
    """What generate-calibrate prints: the policy's bound, and its coverage and risk on the first ``n_check``
    questions (kept out of calibration)."""
    result = {
        "policy": str(out),
        "estimator": policy.estimator,
        "guarantee": policy.risk.guarantee,
        **policy.state()["risk"],
        "error_rate_calibration": float(errors[n_check:].mean()),
    }
    if policy.selection is not None:
        result["selection"] = policy.selection
    if n_check:
        answered = policy.risk.decide(score[:n_check])
        result["holdout"] = {
            "n": n_check,
            "coverage": float(answered.mean()),
            "risk": float(errors[:n_check][answered].mean()) if answered.any() else None,
            "error_rate_all": float(errors[:n_check].mean()),
        }
    return result
