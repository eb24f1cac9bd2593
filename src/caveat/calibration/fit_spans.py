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
confidence, length and type, so the sample has the target's mix of spans. The word temperature is kept.
"""

from __future__ import annotations

import numpy as np

from caveat.calibration.shift import weight_figures, weight_warnings
from caveat.calibration.spans import SCORE, sentence_logits, span_scores
from caveat.calibration.store import save_calibration
from caveat.data.load import load_data
from caveat.decide.risk import RiskControlled
from caveat.decide.shift import MIN_INPUTS, DensityRatio, rejection_sample
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.models.rundir import Run
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
    """Fit the word temperature and the span threshold on the calibration split; saved in caveat.json.
    ``target``: word lists of unlabelled target sentences (module docstring). Returns the summary stored
    under ``calibration``."""
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
    keep, shift = np.ones(len(conf), dtype=bool), None
    if target:
        with subject("target sentences"):
            target_preds = predictor.predict(target)
        spans_target, _, _ = span_scores(
            sentence_logits(target_preds, [len(t) for t in target]), ts.temperature, run.labels, aggregate
        )
        types = sorted({typ for row in spans_cal + spans_target for _, _, typ, _ in row})
        source_x, target_x = _span_covariates(spans_cal, types), _span_covariates(spans_target, types)
        if len(target_x) < MIN_INPUTS:
            raise DataError(
                f"the model finds {len(target_x)} entity spans in the {len(target)} target sentences; at least "
                f"{MIN_INPUTS} are needed to weigh the calibration spans: give more target sentences"
            )
        ratio = DensityRatio(seed=run.config.seed).fit(source_x, target_x)
        weights = ratio.weights(source_x)
        keep = rejection_sample(weights, seed=run.config.seed)
        shift = _shift_summary(ratio, weights, keep, len(target), len(target_x), target_source)
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
    return save_calibration(run, summary)


def _span_covariates(spans: list[list[tuple]], types: list[str]) -> np.ndarray:
    """(S, 3 + T) per predicted span: log confidence, log(1 - confidence), log length in words, type one-hot."""
    rows = []
    for row in spans:
        for start, end, typ, c in row:
            c = min(max(float(c), 1e-6), 1 - 1e-6)
            rows.append([np.log(c), np.log1p(-c), np.log(end - start), *(float(typ == t) for t in types)])
    return np.array(rows, dtype=np.float64).reshape(-1, 3 + len(types))


def _shift_summary(
    ratio: DensityRatio, weights: np.ndarray, keep: np.ndarray, n_sentences: int, n_spans: int, source: str | None
) -> dict:
    figures = weight_figures(ratio, weights, keep)
    ess = figures["effective_sample_size"]
    words = (
        f"calibrated for {n_sentences} unlabelled target sentences ({n_spans} predicted spans): the {len(weights)} "
        f"calibration spans, importance-weighted by confidence, length and type, are worth {ess:.0f}; the span "
        f"threshold was chosen on {int(keep.sum())} of them drawn to look like the target's spans. The bound holds "
        "if the weights are right: they are estimated, and assume a span's chance of being right given its "
        "confidence, length and type is the same in both domains. The word temperature is the in-domain one."
    )
    words += weight_warnings(ess, ratio.auroc)
    return {
        "target": source,
        "n_target": n_sentences,
        "n_target_spans": n_spans,
        **figures,
        "summary": words,
    }
