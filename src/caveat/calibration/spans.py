"""The fitted span calibration of a token-classification (NER) run, applied to ``Predictions``.

A word-level temperature scales the tag probabilities; each predicted span's confidence aggregates its
words' calibrated probabilities (``product`` by default; ``min`` and ``mean``, see uncertainty/tokens.py);
a Learn-then-Test threshold on ``1 - confidence`` keeps or flags each span. Fitting lives in
``fit_spans.py``. ``span_scores`` is the one place where the word temperature is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from caveat.calibration.scaling import TemperatureScaled
from caveat.calibration.store import CALIBRATION_SCORES, stored_arrays
from caveat.decide.risk import RiskControlled
from caveat.errors import ConfigError
from caveat.models.rundir import Run
from caveat.models.tags import bio_spans, decode_tags
from caveat.types import Predictions, Task
from caveat.uncertainty.tokens import AGGREGATIONS, span_confidences

SCORE = "span_uncertainty"  # 1 - span confidence: higher = more uncertain, as every score here


def sentence_logits(preds: Predictions, lengths: list[int]) -> list[np.ndarray]:
    """Per sentence (W_i, C) word logits of the deterministic pass."""
    return [preds.logits[0][i, :n] for i, n in enumerate(lengths)]


def span_scores(
    word_logits: list[np.ndarray],
    temperature: float,
    labels: list[str],
    aggregate: str,
    gold: list[tuple[str, ...]] | None = None,
) -> tuple[list[list[tuple]], np.ndarray, np.ndarray | None]:
    """Predicted spans per sentence ``(start, end, type, confidence)``, all confidences (S,), and
    whether each span is right (S,) when ``gold`` tags are given. Tags are the model's (Viterbi on
    the raw logits); confidences come from the temperature-scaled probabilities (``temperature=1``:
    the raw model's)."""
    if aggregate not in AGGREGATIONS:
        raise ConfigError(f"span aggregate {aggregate!r} is not available; choose one of {', '.join(AGGREGATIONS)}")
    tags = decode_tags(word_logits, labels)
    spans, conf, right = [], [], []
    for i, (z, t) in enumerate(zip(word_logits, tags)):
        probs = softmax(z / temperature, axis=-1)  # (W_i, C)
        row = [(s, e, typ, c[aggregate]) for s, e, typ, c in span_confidences(probs, t, labels)]
        spans.append(row)
        conf += [r[3] for r in row]
        if gold is not None:
            truth = set(bio_spans(list(gold[i])))
            right += [(s, e, typ) in truth for s, e, typ, _ in row]
    return spans, np.array(conf, dtype=np.float64), (np.array(right, dtype=bool) if gold is not None else None)


@dataclass
class SpanCalibration(TemperatureScaled):
    """Word temperature, span aggregate and keep/flag threshold of a calibrated NER run.

    Attributes
    ----------
    calibration_scores : (S,) ``1 - confidence`` of each span predicted on the calibration split (on the target
        sentences when calibrated with a target): the drift alarm's reference; None for runs calibrated before
        it was stored.
    """

    temperature: float
    aggregate: str
    risk: RiskControlled
    labels: list[str]
    calibration_scores: np.ndarray | None = None

    task = Task.TOKEN_CLASSIFICATION

    @classmethod
    def from_run(cls, run: Run) -> SpanCalibration | None:
        """None when the run was never calibrated (``caveat calibrate RUN``)."""
        cal = run.info.get("calibration")
        if not cal or cal.get("task") != Task.TOKEN_CLASSIFICATION.value:
            return None
        return cls(
            cal["temperature"],
            cal["aggregate"],
            RiskControlled.from_state(cal["risk"]),
            list(run.labels),
            calibration_scores=stored_arrays(run).get(CALIBRATION_SCORES),
        )

    def span_scores(self, word_logits: list[np.ndarray], gold: list[tuple[str, ...]] | None = None):
        """``span_scores`` with this run's temperature and aggregate."""
        return span_scores(word_logits, self.temperature, self.labels, self.aggregate, gold=gold)

    def spans(self, preds: Predictions, lengths: list[int]) -> list[list[dict]]:
        """Per sentence: its spans with calibrated ``confidence``, ``decision`` (keep / flag) and ``reason``."""
        spans, conf, _ = self.span_scores(sentence_logits(preds, lengths))
        keep = self.risk.decide(1.0 - conf) if len(conf) else np.zeros(0, dtype=bool)
        out, k = [], 0
        for row in spans:
            items = []
            for s, e, typ, c in row:
                items.append(
                    {
                        "start": s,
                        "end": e,
                        "label": typ,
                        "confidence": float(c),
                        "decision": "keep" if keep[k] else "flag",
                        "reason": self._reason(c, keep[k]),
                    }
                )
                k += 1
            out.append(items)
        return out

    def _reason(self, confidence: float, kept: bool) -> str:
        t = self.risk.threshold
        if not np.isfinite(t):
            return f"no span threshold meets {self.risk.guarantee}: flagging every span"
        sign = "≥" if kept else "<"
        return f"confidence {confidence:.3g} {sign} {1.0 - t:.3g} ({self.risk.guarantee} on kept spans)"

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
