"""Calibrate a token-classification (NER) run: span confidence you can act on.

On the run's calibration split: a word-level temperature (Guo et al. 2017, fitted by NLL on the
words' gold tags), then each predicted span's confidence (the ``product`` of its words' calibrated
tag probabilities by default; ``min`` and ``mean`` also available, see uncertainty/tokens.py), then a
Learn-then-Test threshold (decide/risk.py) on ``1 - confidence`` so that the share of wrong spans
among the kept ones is at most ``target_risk`` with probability ``>= 1 - delta``. Spans below the
threshold are flagged (or dropped by the caller). A span is right when its boundaries and type both
match a gold span (strict, as seqeval's span F1). The bound treats spans as exchangeable draws;
spans of one sentence are not independent, so with many spans per sentence it is approximate.
"""

from __future__ import annotations

import numpy as np

from caveat.calibration.spans import SCORE, sentence_logits, span_scores
from caveat.calibration.store import save_calibration
from caveat.data.load import load_data
from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.rundir import Run
from caveat.types import Task
from caveat.uncertainty.methods.temperature import TemperatureScaling
from caveat.uncertainty.tokens import binary_ece


def calibrate_spans(
    run: Run,
    *,
    target_risk: float = 0.05,
    delta: float = 0.05,
    aggregate: str = "product",
    batch_size: int | None = None,
) -> dict:
    """Fit the word temperature and the span threshold on the calibration split; saved in caveat.json.
    Returns the summary stored under ``calibration``."""
    if run.task is not Task.TOKEN_CLASSIFICATION:
        raise ConfigError(f"{run.path} is a {run.task.value} run; calibrate_spans is for token classification")
    cal = load_data(run.config).calibration
    index = {lab: i for i, lab in enumerate(run.labels)}
    predictor = Predictor.from_run(run, batch_size=batch_size, calibrated=False)  # refits: the old fit is not used
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
    _, conf, right = span_scores(logits, ts.temperature, run.labels, aggregate, gold=tags)
    if len(conf) == 0:
        raise ConfigError(
            f"the model predicts no entity span on the {len(lengths)} calibration sentences; nothing to calibrate"
        )
    # four sequences: annotation noise puts a few wrong spans among the most confident ones (risk.py)
    risk = RiskControlled(target_risk, delta, score=SCORE, allow_empty=True, starts=4).calibrate(1.0 - conf, ~right)
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
    return save_calibration(run, summary)
