"""The calibration stage of a token-classification (NER) run: span confidence you can act on.

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import softmax

from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
from caveat.types import Predictions, Task

SCORE = "span_uncertainty"  # 1 - span confidence: higher = more uncertain, as every score here


def sentence_logits(preds: Predictions, lengths: list[int]) -> list[np.ndarray]:
    """Per sentence (W_i, C) word logits of the deterministic pass."""
    return [preds.logits[0][i, :n] for i, n in enumerate(lengths)]


def span_scores(word_logits: list[np.ndarray], temperature: float, labels: list[str], aggregate: str,
                gold: list[tuple[str, ...]] | None = None) -> tuple[list[list[tuple]], np.ndarray, np.ndarray | None]:
    """Predicted spans per sentence ``(start, end, type, confidence)``, all confidences (S,), and
    whether each span is right (S,) when ``gold`` tags are given. Tags are the model's (Viterbi on
    the raw logits); confidences come from the temperature-scaled probabilities."""
    from caveat.models.tags import bio_spans
    from caveat.training.scoring import decode_tags
    from caveat.uncertainty.tokens import AGGREGATIONS, span_confidences

    if aggregate not in AGGREGATIONS:
        raise ConfigError(f"span aggregate {aggregate!r} is not available; choose one of {', '.join(AGGREGATIONS)}")
    tags = decode_tags(word_logits, labels)
    spans, conf, right = [], [], []
    for i, (z, t) in enumerate(zip(word_logits, tags)):
        row = [(s, e, typ, c[aggregate]) for s, e, typ, c in span_confidences(softmax(z / temperature, axis=-1), t, labels)]
        spans.append(row)
        conf += [r[3] for r in row]
        if gold is not None:
            truth = set(bio_spans(list(gold[i])))
            right += [(s, e, typ) in truth for s, e, typ, _ in row]
    return spans, np.array(conf, dtype=np.float64), (np.array(right, dtype=bool) if gold is not None else None)


def calibrate_token_run(run_dir: str | Path | Run, *, target_risk: float = 0.05, delta: float = 0.05,
                        aggregate: str = "product", batch_size: int | None = None) -> dict:
    """Fit the word temperature and the span threshold on the calibration split; saved in caveat.json.
    Returns the summary stored under ``calibration``."""
    from caveat.data.load import load_data
    from caveat.decide.risk import RiskControlled
    from caveat.inference import Predictor
    from caveat.uncertainty.methods.temperature import TemperatureScaling
    from caveat.uncertainty.tokens import binary_ece

    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if run.task is not Task.TOKEN_CLASSIFICATION:
        raise ConfigError(f"{run.path} is a {run.task.value} run; calibrate_token_run is for token classification")
    cal = load_data(run.config).calibration
    index = {lab: i for i, lab in enumerate(run.labels)}
    preds = Predictor.from_run(run, batch_size=batch_size).predict([ex.tokens for ex in cal.examples])
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
        raise ConfigError(f"the model predicts no entity span on the {len(lengths)} calibration sentences; nothing to calibrate")
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
    from caveat.calibrate import save_calibration

    return save_calibration(run, summary)


@dataclass
class SpanCaveats:
    """The fitted span calibration of a NER run, applied to ``Predictions``."""

    temperature: float
    aggregate: str
    risk: object
    labels: list[str]

    @classmethod
    def from_run(cls, run: Run) -> "SpanCaveats | None":
        """None when the run was never calibrated (``caveat calibrate RUN``)."""
        from caveat.decide.risk import RiskControlled

        cal = run.info.get("calibration")
        if not cal or cal.get("task") != Task.TOKEN_CLASSIFICATION.value:
            return None
        return cls(cal["temperature"], cal["aggregate"], RiskControlled.from_state(cal["risk"]), list(run.labels))

    def spans(self, preds: Predictions, lengths: list[int]) -> list[list[dict]]:
        """Per sentence: its spans with calibrated ``confidence``, ``decision`` (keep / flag) and ``reason``."""
        spans, conf, _ = span_scores(sentence_logits(preds, lengths), self.temperature, self.labels, self.aggregate)
        keep = self.risk.decide(1.0 - conf) if len(conf) else np.zeros(0, dtype=bool)
        t = self.risk.threshold
        out, k = [], 0
        for row in spans:
            items = []
            for s, e, typ, c in row:
                if not np.isfinite(t):
                    why = f"no span threshold meets {self.risk.guarantee}: flagging every span"
                else:
                    need = 1.0 - t
                    why = (f"confidence {c:.3g} ≥ {need:.3g} ({self.risk.guarantee} on kept spans)" if keep[k]
                           else f"confidence {c:.3g} < {need:.3g} ({self.risk.guarantee} on kept spans)")
                items.append({"start": s, "end": e, "label": typ, "confidence": float(c),
                              "decision": "keep" if keep[k] else "flag", "reason": why})
                k += 1
            out.append(items)
        return out

    def annotate(self, rows: list[dict], preds: Predictions) -> list[str]:
        """Add ``confidence``, ``decision`` and ``reason`` to each span of ``rows`` (the rows of
        ``caveat predict`` / ``serve`` for the same ``preds``); returns the decisions, in order."""
        judged = self.spans(preds, [len(row["tokens"]) for row in rows])
        decisions = []
        for row, items in zip(rows, judged):
            by_span = {(j["start"], j["end"], j["label"]): j for j in items}
            for span in row["spans"]:
                j = by_span.get((span["start"], span["end"], span["label"]))
                if j is not None:  # the same Viterbi tags on both sides: every span has its judgement
                    span.update(confidence=j["confidence"], decision=j["decision"], reason=j["reason"])
                    decisions.append(j["decision"])
        return decisions
