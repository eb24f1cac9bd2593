"""Calibrate a token-classification (NER) run: span confidence you can act on.

On the run's calibration split: a word-level temperature (Guo et al. 2017, fitted by NLL on the
words' gold tags), then each predicted span's confidence (the ``product`` of its words' calibrated
tag probabilities by default; ``min`` and ``mean`` also available, see uncertainty/tokens.py), then a
Learn-then-Test threshold (decide/risk.py) on ``1 - confidence`` so that the share of wrong spans
among the kept ones is at most ``target_risk`` with probability ``>= 1 - delta``. Spans below the
threshold are flagged (or dropped by the caller). A span is right when its boundaries and type both
match a gold span (strict, as seqeval's span F1). The bound treats spans as exchangeable draws;
spans of one sentence are not independent, so with many spans per sentence it is approximate.

With ``target`` (unlabelled sentences of the domain the run will serve), the threshold is chosen on a
rejection sample of the calibration spans drawn with importance weights (decide/shift.py; Park et al.
2022): a domain classifier tells the target's predicted spans from the calibration ones by their
confidence, length, type and familiarity, so the sample has the target's mix of spans. The word
temperature is kept.

Familiarity is what the training split says about a span: whether its text was a gold entity there, of
the same type, and how often its rarest word occurs. Unseen entities are where NER models err
(Augenstein et al. 2017, "Generalisation in named entity recognition: a quantitative analysis"), and a
new domain has more of them: on CoNLL-2003, 55% of testb's predicted spans were seen in training against
69% of the calibration split's, and without familiarity the weights were near uniform (domain AUROC 0.54)
and the kept-span bound broke on testb (6.3% at a 5% target). The weights assume a span's chance of
being right given these covariates is the same in both domains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from caveat.calibration.shift import weight_figures, weight_warnings
from caveat.calibration.spans import SCORE, sentence_logits, span_scores
from caveat.calibration.store import CALIBRATION_SCORES, save_arrays, save_calibration
from caveat.data.load import load_data
from caveat.decide.risk import RiskControlled
from caveat.decide.shift import MIN_INPUTS, DensityRatio, rejection_sample
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.models.rundir import Run
from caveat.models.tags import bio_spans
from caveat.progress import subject
from caveat.types import Task
from caveat.uncertainty.methods.temperature import TemperatureScaling
from caveat.uncertainty.tokens import binary_ece


def calibrate_spans(
    run: Run,
    *,
    target_risk: float = 0.05,
    delta: float = 0.05,
    aggregate: str = "product",
    target: list[list[str]] | None = None,
    target_source: str | None = None,
    batch_size: int | None = None,
) -> dict:
    """Fit the word temperature and the span threshold on the calibration split; saved in caveat.json, and the
    spans' uncertainty (the drift alarm's reference) in calibration.safetensors. ``target``: word lists of
    unlabelled target sentences (module docstring). Returns the summary stored under ``calibration``."""
    if run.task is not Task.TOKEN_CLASSIFICATION:
        raise ConfigError(f"{run.path} is a {run.task.value} run; calibrate_spans is for token classification")
    cal = load_data(run.config).calibration
    index = {lab: i for i, lab in enumerate(run.labels)}
    predictor = Predictor.from_run(run, batch_size=batch_size, calibrated=False)  # refits: the old fit is not used
    with subject("calibration"):
        preds = predictor.predict([ex.tokens for ex in cal.examples])
    lengths = [len(ex.tokens) for ex in cal.examples]
    words = preds.mask  # (N, W) real, not truncated, words
    gold = np.zeros(words.shape, dtype=np.int64)
    for i, ex in enumerate(cal.examples):
        gold[i, : len(ex.tags)] = [index[t] for t in ex.tags]
    ts = TemperatureScaling().fit(preds.logits[0][words], gold[words])  # (K, C) words of all sentences
    logits = sentence_logits(preds, lengths)
    tags = [ex.tags for ex in cal.examples]
    _, before, _ = span_scores(logits, 1.0, run.labels, aggregate)
    spans_cal, conf, right = span_scores(logits, ts.temperature, run.labels, aggregate, gold=tags)
    if len(conf) == 0:
        raise ConfigError(
            f"the model predicts no entity span on the {len(lengths)} calibration sentences; nothing to calibrate"
        )
    keep, shift, seen = np.ones(len(conf), dtype=bool), None, conf
    if target:
        with subject("target sentences"):
            target_preds = predictor.predict(target)
        spans_target, seen, _ = span_scores(
            sentence_logits(target_preds, [len(t) for t in target]), ts.temperature, run.labels, aggregate
        )
        types = sorted({typ for row in spans_cal + spans_target for _, _, typ, _ in row})
        familiar = Familiarity.of_run(run)
        source_x = _span_covariates(spans_cal, [ex.tokens for ex in cal.examples], types, familiar)
        target_x = _span_covariates(spans_target, target, types, familiar)
        if len(target_x) < MIN_INPUTS:
            raise DataError(
                f"the model finds {len(target_x)} entity spans in the {len(target)} target sentences; at least "
                f"{MIN_INPUTS} are needed to weigh the calibration spans: give more target sentences"
            )
        ratio = DensityRatio(seed=run.config.seed).fit(source_x, target_x)
        weights = ratio.weights(source_x)
        keep = rejection_sample(weights, seed=run.config.seed)
        shift = _shift_summary(ratio, weights, keep, len(target), len(target_x), target_source, familiar)
    # four sequences: annotation noise puts a few wrong spans among the most confident ones (risk.py)
    risk = RiskControlled(target_risk, delta, score=SCORE, allow_empty=True, starts=4)
    risk.calibrate((1.0 - conf)[keep], (~right)[keep])
    summary = {
        "task": Task.TOKEN_CLASSIFICATION.value,
        "fitted_on": "calibration",
        "n": len(lengths),
        "n_spans": int(len(conf)),
        "temperature": ts.temperature,
        "aggregate": aggregate,
        "span_precision": float(right.mean()),
        "span_ece_before": binary_ece(before, right),
        "span_ece_after": binary_ece(conf, right),
        "risk": risk.state(),
        "score": SCORE,
    }
    if shift is not None:
        summary["shift"] = shift
    # (S,) the service's drift reference: the target's spans when given, since they are what traffic now looks like
    save_arrays(run, {CALIBRATION_SCORES: 1.0 - np.asarray(seen, dtype=np.float64)})
    return save_calibration(run, summary)


@dataclass(frozen=True)
class Familiarity:
    """What the training split says about a span's words (module docstring): its gold entities as
    (lower-cased text, type), their texts, and the lower-cased words' counts."""

    entities: frozenset[tuple[str, str]]
    texts: frozenset[str]
    counts: Counter

    @classmethod
    def of_examples(cls, examples) -> Familiarity:
        entities, counts = set(), Counter()
        for ex in examples:
            words = [w.lower() for w in ex.tokens]
            counts.update(words)
            entities.update((" ".join(words[s:e]), typ) for s, e, typ in bio_spans(list(ex.tags)))
        return cls(frozenset(entities), frozenset(text for text, _ in entities), counts)

    @classmethod
    def of_run(cls, run: Run) -> Familiarity | None:
        """From the run's training split; None when it cannot be read (a run moved away from its data)."""
        try:
            return cls.of_examples(load_data(run.config).train.examples)
        except (DataError, ConfigError, OSError):
            return None

    def features(self, words: list[str], typ: str) -> list[float]:
        """Seen as an entity of this type, seen as an entity of any type, log(1 + count of the rarest word)."""
        text = " ".join(w.lower() for w in words)
        rarest = min(self.counts[w.lower()] for w in words)
        return [float((text, typ) in self.entities), float(text in self.texts), float(np.log1p(rarest))]


def _span_covariates(
    spans: list[list[tuple]], sentences: list[list[str]], types: list[str], familiar: Familiarity | None
) -> np.ndarray:
    """(S, 3 + T [+ 3]) per predicted span: log confidence, log(1 - confidence), log length in words, type
    one-hot, and with ``familiar`` the span's familiarity features."""
    rows = []
    for row, words in zip(spans, sentences):
        for start, end, typ, c in row:
            c = min(max(float(c), 1e-6), 1 - 1e-6)
            x = [np.log(c), np.log1p(-c), np.log(end - start), *(float(typ == t) for t in types)]
            rows.append(x + (familiar.features(words[start:end], typ) if familiar is not None else []))
    return np.array(rows, dtype=np.float64).reshape(-1, 3 + len(types) + (3 if familiar is not None else 0))


def _shift_summary(
    ratio: DensityRatio,
    weights: np.ndarray,
    keep: np.ndarray,
    n_sentences: int,
    n_spans: int,
    source: str | None,
    familiar: Familiarity | None,
) -> dict:
    figures = weight_figures(ratio, weights, keep)
    ess = figures["effective_sample_size"]
    covariates = "confidence, length, type and familiarity" if familiar is not None else "confidence, length and type"
    words = (
        f"calibrated for {n_sentences} unlabelled target sentences ({n_spans} predicted spans): the {len(weights)} "
        f"calibration spans, importance-weighted by {covariates}, are worth {ess:.0f}; the span threshold was "
        f"chosen on {int(keep.sum())} of them drawn to look like the target's spans. The bound holds if the weights "
        f"are right: they are estimated, and assume a span's chance of being right given its {covariates} is the "
        "same in both domains. The word temperature is the in-domain one."
    )
    if familiar is None:
        words += (
            " The training split could not be read, so familiarity (whether a span was seen in training) was left "
            "out; new domains err most on unseen entities, so expect the bound to be optimistic there."
        )
    words += weight_warnings(ess, ratio.auroc)
    return {
        "target": source,
        "covariates": covariates,
        "n_target": n_sentences,
        "n_target_spans": n_spans,
        **figures,
        "summary": words,
    }
