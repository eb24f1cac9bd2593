"""Selective generation: answer only where a calibrated bound on P(wrong) holds, else say "I don't know".

The same Learn-then-Test risk control as for classifiers (:class:`caveat.decide.risk.RiskControlled`):
on calibration questions with known answers, each threshold on an estimator's score is a hypothesis
about the error rate of the answered questions, and the threshold kept has, with probability at least
``1 - delta`` over the calibration draw, an error rate at most ``target_risk`` among answered
questions from the same distribution. A :class:`GenerationPolicy` holds everything needed to apply it
again: the model, the sampling settings and prompt template the scores were computed with, the
estimator, the correctness rule that defined "wrong", and the threshold. It is saved as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError, DataError
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
    """

    lm: str
    sampling: SamplingConfig
    estimator: str
    rule: str
    risk: RiskControlled
    template: str | None = None
    meaning: dict = field(default_factory=lambda: {"threshold": 0.9, "nli_model": None})

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
        risk = RiskControlled(target_risk, delta, score=estimator, starts=2, allow_empty=allow_empty)
        risk.calibrate(np.asarray(scores, dtype=float), np.asarray(errors, dtype=bool))
        return cls(lm, sampling, estimator, rule, risk, template, meaning or {"threshold": 0.9, "nli_model": None})

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
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if isinstance(e, (DataError, ConfigError)):
                raise
            raise DataError(
                f"{path} is not a generation policy ({e}); fit one with caveat generate-calibrate"
            ) from None
