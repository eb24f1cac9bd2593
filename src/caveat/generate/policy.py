"""Selective generation: answer only where a calibrated bound on P(wrong) holds, else say "I don't know".

The same Learn-then-Test risk control as for classifiers (:class:`caveat.decide.risk.RiskControlled`):
on calibration questions with known answers, each threshold on an estimator's score is a hypothesis
about the error rate of the answered questions, and the threshold kept has, with probability at least
``1 - delta`` over the calibration draw, an error rate at most ``target_risk`` among answered
questions from the same distribution. A :class:`GenerationPolicy` holds everything needed to apply it
again: the model, the sampling settings and prompt template the scores were computed with, the
estimator, the correctness rule that defined "wrong", and the threshold. It is saved as JSON.

:meth:`GenerationPolicy.fit` thresholds an estimator the user names; :meth:`GenerationPolicy.fit_auto`
chooses it on one half of the calibration questions and fits the threshold on the other
(:mod:`caveat.generate.choose`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError, DataError
from caveat.generate.choose import STARTS, choose_estimator
from caveat.generate.estimators import version_1_name
from caveat.generate.sampling import SamplingConfig
from caveat.io import read_json, write_json_atomic

POLICY_VERSION = 2  # 2: the "perplexity" estimator is exp(mean NLL); a version-1 policy on it reads as mean_nll


@dataclass
class GenerationPolicy:
    """A fitted answer/abstain rule for generated answers.

    Attributes
    ----------
    lm : the model name the scores came from.
    sampling : the sampling settings the scores came from.
    estimator : the uncertainty estimator thresholded.
    rule : the correctness rule that defined an error on the calibration questions.
    risk : the fitted :class:`RiskControlled`.
    template : the prompt template (None: caveat's default for the question kind).
    meaning : how meaning clusters were built (``make_equivalence`` keywords: ``threshold``, ``nli_model``);
        sample-based scores depend on it, so the policy applies it again.
    selection : how ``estimator`` was chosen when :meth:`fit_auto` chose it (``Choice.state()``: the
        candidates with their selection-half figures, the criterion and the reason), else None.
    """

    lm: str
    sampling: SamplingConfig
    estimator: str
    rule: str
    risk: RiskControlled
    template: str | None = None
    meaning: dict = field(default_factory=lambda: {"threshold": 0.9, "nli_model": None})
    selection: dict | None = None

    @classmethod
    def fit(
        cls,
        scores,
        errors,
        *,
        lm: str,
        sampling: SamplingConfig,
        estimator: str,
        rule: str,
        target_risk: float,
        delta: float = 0.05,
        template: str | None = None,
        allow_empty: bool = False,
        meaning: dict | None = None,
    ) -> GenerationPolicy:
        """Calibrate on (N,) scores and (N,) errors of calibration questions.

        With ``allow_empty`` an unreachable target gives a policy that abstains on every question
        instead of an error.
        """
        risk = RiskControlled(target_risk, delta, score=estimator, starts=STARTS, allow_empty=allow_empty)
        risk.calibrate(np.asarray(scores, dtype=float), np.asarray(errors, dtype=bool))
        return cls(lm, sampling, estimator, rule, risk, template, meaning or {"threshold": 0.9, "nli_model": None})

    @classmethod
    def fit_auto(
        cls,
        scores: Mapping[str, object],
        errors,
        *,
        candidates: Sequence[str],
        seed: int = 0,
        lm: str,
        sampling: SamplingConfig,
        rule: str,
        target_risk: float,
        delta: float = 0.05,
        template: str | None = None,
        allow_empty: bool = False,
        meaning: dict | None = None,
    ) -> GenerationPolicy:
        """Choose the estimator on a seeded half of the calibration questions, fit its threshold on the other.

        ``scores`` maps each of ``candidates`` to its (N,) scores, ``errors`` is (N,) bool. The candidates are
        ranked on the selection half (:func:`~caveat.generate.choose.choose_estimator`: the coverage the same
        risk control certifies there, ties by AUROC); the threshold of the one ranked first is fitted on the
        threshold half alone, which the choice never saw, so the bound holds as for a named estimator. The
        cost: the threshold is fitted on half the questions, so it certifies less coverage (a wider bound)
        than :meth:`fit` on all of them; name the estimator with :meth:`fit` when you know which to use.
        ``policy.selection`` records the choice.
        """
        choice = choose_estimator(
            scores, errors, candidates=candidates, target_risk=target_risk, delta=delta, seed=seed
        )
        fit = choice.threshold_half
        policy = cls.fit(
            np.asarray(scores[choice.chosen], dtype=float)[fit],
            np.asarray(errors)[fit],
            lm=lm,
            sampling=sampling,
            estimator=choice.chosen,
            rule=rule,
            target_risk=target_risk,
            delta=delta,
            template=template,
            allow_empty=allow_empty,
            meaning=meaning,
        )
        policy.selection = choice.state()
        return policy

    def decide(self, score: float) -> dict:
        """``{"decision": "answer"|"abstain", "reason": ...}`` for one question's score."""
        answer = bool(self.risk.decide(np.array([score]))[0])
        threshold = self.risk.threshold
        guarantee = f"{self.risk.guarantee} among answered questions, errors judged by {self.rule}"
        if answer:
            reason = f"{self.estimator} = {score:.4g} ≤ threshold {threshold:.4g}: answered ({guarantee})"
        else:
            reason = (
                f"{self.estimator} = {score:.4g} > threshold {threshold:.4g}: abstained, since answering "
                f"would break the bound ({guarantee})"
            )
        return {"decision": "answer" if answer else "abstain", "reason": reason}

    def state(self) -> dict:
        return {
            "version": POLICY_VERSION,
            "lm": self.lm,
            "sampling": asdict(self.sampling),
            "estimator": self.estimator,
            "rule": self.rule,
            "template": self.template,
            "meaning": self.meaning,
            "selection": self.selection,
            "risk": self.risk.state(),
        }

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.state())

    @classmethod
    def load(cls, path: str | Path) -> GenerationPolicy:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no generation policy at {path}; fit one with caveat generate-calibrate")
        try:
            s = read_json(path)
            if s.get("version") not in (1, POLICY_VERSION):
                raise DataError(f"{path} is policy version {s.get('version')!r}; this caveat reads {POLICY_VERSION}")
            risk = RiskControlled.from_state(s["risk"])
            estimator = s["estimator"]
            if s["version"] == 1:  # its threshold is on the scale it was fitted on, which "perplexity" no longer has
                estimator = risk.score = version_1_name(estimator)
            return cls(
                s["lm"],
                SamplingConfig(**s["sampling"]),
                estimator,
                s["rule"],
                risk,
                s.get("template"),
                s.get("meaning") or {"threshold": 0.9, "nli_model": None},
                s.get("selection"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if isinstance(e, (DataError, ConfigError)):
                raise
            raise DataError(
                f"{path} is not a generation policy ({e}); fit one with caveat generate-calibrate"
            ) from None
