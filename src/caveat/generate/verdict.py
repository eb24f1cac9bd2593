"""The one line a person reads after ``caveat generate``: the answer, and what its scores mean.

A raw score has no scale of its own (a mean token entropy of 0.7 may be low for one model and high for
another), so the line reads the scores against what is known, best first:

1. a generation policy: its decision, answer or abstain under a risk bound, and why;
2. reference scores, the per-question scores ``generate-eval`` writes with its records: each estimator's
   percentile among those questions (the share of them with a lower score, ties counting half), the one
   that best detected wrong answers there (AUROC) first;
3. neither: the headline score and the sign convention (higher = more uncertain).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.generate.estimators import version_1_name
from caveat.generate.lm import same_lm
from caveat.generate.sampling import SamplingConfig
from caveat.io import read_json

# the best wrong-answer detectors on XQuAD with SmolLM2-135M (docs/generate.md), for when nothing ranks them
HEADLINE = ("mean_token_entropy", "perplexity", "mean_nll", "self_consistency")
ANSWER_CHARS = 60  # the answer is cut to this in the line; the JSON has all of it


@dataclass
class ReferenceScores:
    """Each estimator's scores on reference questions with known answers (``generate-eval``'s records).

    Attributes
    ----------
    source : where they were read from.
    model : the model name they were computed with.
    sampling : the sampling settings they were computed with (``asdict(SamplingConfig)``).
    scores : estimator name -> (N,) scores of the N reference questions.
    auroc : estimator name -> its wrong-answer AUROC there (missing when unknown).
    """

    source: str
    model: str
    sampling: dict
    scores: dict[str, np.ndarray]
    auroc: dict[str, float]

    @classmethod
    def load(cls, path: str | Path) -> ReferenceScores:
        """Read a ``generate-eval`` result written with its per-question records."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"no reference scores at {path}; write them with generate-eval's {{out}}", fields=("out",)
            )
        try:
            result = read_json(path)
            records = result["records"]
            names = list(records[0]["scores"]) if records else []
            scores = {n: np.array([float(r["scores"][n]) for r in records]) for n in names}
            auroc = {
                n: float(m["auroc"])
                for n, m in result.get("estimators", {}).items()
                if n in scores and m.get("auroc") is not None
            }
            if result.get("scores_version", 1) == 1:  # written when "perplexity" was the mean NLL per token
                scores, auroc = _from_version_1(scores), _from_version_1(auroc)
            found = cls(str(path), result["model"], dict(result["sampling"]), scores, auroc)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(
                f"{path} holds no per-question scores ({type(e).__name__}: {e}); use the file generate-eval "
                "writes with {out}, which keeps them under 'records'",
                fields=("out",),
            ) from None
        if not records:
            raise DataError(f"{path} has no reference questions under 'records'; evaluate at least one question")
        return found

    def check_comparable(self, model: str, sampling: SamplingConfig) -> ReferenceScores:
        """Refuse scores from another model or other sampling settings: their percentiles would mean nothing."""
        if not same_lm(self.model, model):
            raise ConfigError(
                f"the reference scores in {self.source} come from the model {self.model!r}, these answers from "
                f"{model!r}; use reference scores of the same model"
            )
        mine = asdict(sampling)
        differ = sorted(k for k in mine if k in self.sampling and self.sampling[k] != mine[k])
        if differ:
            settings = ", ".join(f"{k}={self.sampling[k]!r} there, {mine[k]!r} here" for k in differ)
            raise ConfigError(
                f"the reference scores in {self.source} were sampled with other settings ({settings}); "
                "generate with the same settings"
            )
        return self

    def percentile(self, name: str, score: float) -> float | None:
        """Percent of reference questions with a lower ``name`` score (ties count half); None when not scored."""
        ref = self.scores.get(name)
        if ref is None or not np.isfinite(score):
            return None
        return float(100 * ((ref < score).sum() + 0.5 * (ref == score).sum()) / len(ref))

    def percentiles(self, uncertainty: dict[str, float]) -> dict[str, float]:
        """Each scored estimator's percentile, the best wrong-answer detector (AUROC) first."""
        found = {n: p for n, s in uncertainty.items() if (p := self.percentile(n, s)) is not None}
        return dict(sorted(found.items(), key=lambda kv: -self.auroc.get(kv[0], -1.0)))


def _from_version_1(values: dict) -> dict:
    """Scores (or AUROCs) of a version-1 file under today's names: its ``perplexity`` is ``mean_nll``, and today's
    ``perplexity`` is exp of that (the same ranking, so the same AUROC and percentiles)."""
    out = {version_1_name(n): v for n, v in values.items()}
    if "perplexity" in values and "perplexity" not in out:
        v = values["perplexity"]
        out["perplexity"] = np.exp(v) if isinstance(v, np.ndarray) else v
    return out


def headline(uncertainty: dict[str, float]) -> str:
    """The estimator to show when nothing else ranks them: the first of ``HEADLINE`` computed, else the first."""
    if not uncertainty:
        raise ValueError("no estimator was computed; a verdict needs at least one score")
    return next((n for n in HEADLINE if n in uncertainty), next(iter(uncertainty)))


def _quoted(answer: str) -> str:
    text = " ".join(answer.split())
    return repr(text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…")


def verdict(result: dict, *, reference: ReferenceScores | None = None, hint: str = "") -> str:
    """One line on ``answer_question``'s ``result``: the answer, then the policy's decision, else each
    estimator's percentile among ``reference`` questions, else the headline score; ``hint`` (what to pass to
    read the score, in the face's words) ends the last kind."""
    answer = f"answer: {_quoted(result['answer'])}"
    uncertainty = result["uncertainty"]
    if result.get("decision") is not None:
        return f"{answer} · policy: {result['decision'].upper()} ({result['reason']})"
    if reference is not None:
        shares = reference.percentiles(uncertainty)
        if shares:
            n = len(next(iter(reference.scores.values())))
            listed = ", ".join(f"{name} {share:.0f}%" for name, share in shares.items())
            return f"{answer} · more uncertain than this share of {n} reference questions: {listed}"
    name = headline(uncertainty)
    line = f"{answer} · headline score {name} = {uncertainty[name]:.4g} (higher = more uncertain)"
    return f"{line}; {hint}" if hint else line
