"""The rows a prediction is served as: one JSON-ready dict per input, built here and nowhere else.

``caveat predict`` prints them, ``POST /v1/predict`` returns them and ``Model.predict`` wraps them (in ``Results``,
whose ``Row`` reads a row as attributes), so the three agree by construction. A text row is ``{text, label,
probability, probabilities}``, plus ``uncertainty``, ``prediction_set``, ``decision`` and ``reason`` when the run is
calibrated; a NER row is ``{text, tokens, tags, spans}``, each span with ``confidence``, ``decision`` (keep / flag)
and ``reason`` when calibrated. An uncalibrated run's rows carry a ``reason`` that says how to calibrate.
``method="mc_dropout"`` adds ``mc_dropout``: the mean of K sampled passes and its uncertainty scores, and
``decided_by: "deterministic"``: the label, probabilities, prediction set and decision stay those of the one
deterministic, temperature-scaled pass, because the calibration's thresholds and quantiles were fitted on those
probabilities and guarantee nothing for MC averages (docs/service.md). ``certify=True`` (text-classification runs)
adds ``certified``: SAFER's certificate that the smoothed prediction survives word substitutions
(``caveat.robustness.certify.add_certified``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from caveat.calibration import Calibration, SpanCalibration
from caveat.errors import ConfigError, NotCalibratedError
from caveat.inference import Predictor
from caveat.models.tags import bio_spans, decode_tags
from caveat.types import Predictions, Task
from caveat.uncertainty.scores import SCORES

MC_SCORES = ("entropy", "expected_entropy", "mutual_information", "variance")
METHODS = ("deterministic", "mc_dropout")


@dataclass
class Served:
    """Rows and the deterministic ``Predictions`` they were built from (raw: before calibration)."""

    rows: list[dict]
    predictions: Predictions
    sampled: Predictions | None = None  # (K, N, C) with method="mc_dropout"


def uncalibrated_reason(predictor: Predictor) -> str:
    """What an uncalibrated run's rows lack, and how to add it."""
    what = (
        "no calibrated span confidence or keep/flag decision"
        if predictor.task is Task.TOKEN_CLASSIFICATION
        else "no prediction set or decision"
    )
    where = f" {predictor.run.path}" if predictor.run is not None else ""
    return f"run not calibrated: {what}; calibrate it (caveat calibrate{where}, or model.calibrate() in Python)"


def check_request(method: str, samples: int, top_k: int) -> None:
    """Validate the options every face passes, before any model pass."""
    if method not in METHODS:
        raise ConfigError(
            f"{{method}}={method!r} is not available; choose one of: {', '.join(METHODS)}", fields=("method",)
        )
    if method == "mc_dropout" and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 2):
        raise ConfigError(
            f"{{samples}} must be an integer >= 2 (MC dropout passes). Got {samples!r}.", fields=("samples",)
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"{{top_k}} must be an integer >= 0 (0 = all labels). Got {top_k!r}.", fields=("top_k",))


def predict_rows(
    predictor: Predictor,
    inputs: Sequence,
    *,
    top_k: int = 0,
    method: str = "deterministic",
    samples: int = 10,
    seed: int = 0,
) -> Served:
    """Predict ``inputs`` (texts, or word lists for NER) and build their rows with the run's calibration."""
    check_request(method, samples, top_k)
    if method == "mc_dropout" and predictor.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError(
            "{method}='mc_dropout' is for text-classification runs so far; use 'deterministic'", fields=("method",)
        )
    inputs = list(inputs)
    preds = predictor.predict(inputs)
    rows = format_rows(preds, inputs, predictor.task, top_k, calibration=predictor.calibration)
    if predictor.calibration is None:
        reason = uncalibrated_reason(predictor)
        for row in rows:
            row["reason"] = reason
    sampled = None
    if method == "mc_dropout":
        sampled = predictor.predict(inputs, samples=samples, seed=seed)
        add_mc_dropout(rows, sampled, top_k)
    return Served(rows, preds, sampled)


def format_rows(
    preds: Predictions,
    inputs: Sequence,
    task: Task,
    top_k: int,
    calibration: Calibration | SpanCalibration | None = None,
) -> list[dict]:
    """Rows from ``Predictions`` already computed for ``inputs`` (texts, or word lists for token tasks);
    ``top_k`` probabilities per row (0: all); a calibration adds its judgements."""
    if task is Task.TOKEN_CLASSIFICATION:
        rows = [_span_row(preds, i, text) for i, text in enumerate(inputs)]
        if calibration is not None:  # calibrated: each span kept or flagged, with the reason
            calibration.annotate(rows, preds)
        return rows
    labels = preds.labels
    k = len(labels) if top_k == 0 else min(top_k, len(labels))
    extra = calibration.judge(preds) if calibration is not None else [{} for _ in inputs]
    rows = []
    for i, text in enumerate(inputs):
        p = extra[i].pop("probs", preds.probs[0][i])
        order = np.argsort(-p)[:k]
        rows.append(
            {
                "text": text,
                "label": labels[order[0]],
                "probability": float(p[order[0]]),
                "probabilities": {labels[j]: float(p[j]) for j in order},
                **extra[i],
            }
        )
    return rows


def _span_row(preds: Predictions, i: int, text) -> dict:
    """Input ``i`` of a token task: its words, Viterbi tags and spans with the raw minimum word probability."""
    labels, probs = preds.labels, preds.probs[0]  # (N, W, C)
    words = text.split() if isinstance(text, str) else list(text)
    tags = decode_tags([preds.logits[0][i, : len(words)]], labels)[0]
    word_p = [float(probs[i, w, labels.index(t)]) for w, t in enumerate(tags)]
    spans = [
        {"text": " ".join(words[s:e]), "label": typ, "start": s, "end": e, "probability": min(word_p[s:e])}
        for s, e, typ in bio_spans(tags)
    ]
    return {"text": text if isinstance(text, str) else " ".join(words), "tokens": words, "tags": tags, "spans": spans}


def add_mc_dropout(rows: list[dict], sampled: Predictions, top_k: int = 0) -> None:
    """Add ``mc_dropout`` to each row: the mean of the K sampled passes (probs (K, N, C)) and its scores; and
    ``decided_by``, which says that the row's own label and decision come from the deterministic pass."""
    labels = sampled.labels
    mean = sampled.probs.mean(axis=0)  # (N, C)
    scores = {name: SCORES.get(name)(probs=sampled.probs) for name in MC_SCORES}  # each (N,)
    k = len(labels) if top_k == 0 else min(top_k, len(labels))
    for i, row in enumerate(rows):
        order = np.argsort(-mean[i])[:k]
        # the conformal quantile and risk threshold hold for the scores they were fitted on: deterministic ones
        row["decided_by"] = "deterministic"
        row["mc_dropout"] = {
            "samples": int(sampled.probs.shape[0]),
            "label": labels[order[0]],
            "probability": float(mean[i, order[0]]),
            "probabilities": {labels[j]: float(mean[i, j]) for j in order},
            "uncertainty": {name: float(v[i]) for name, v in scores.items()},
        }


def input_seed(seed: int, position: int) -> int:
    """The MC-dropout seed of the input at ``position`` (0-based) of a request or file drawn with ``seed``:
    a function of the two only, in ``[0, 2**63)``."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def add_seeded_mc_dropout(
    predictor: Predictor,
    inputs: Sequence,
    rows: list[dict],
    *,
    samples: int,
    seed: int,
    start: int = 0,
    top_k: int = 0,
) -> None:
    """``add_mc_dropout`` with each input sampled alone, seeded by ``input_seed(seed, start + i)``: an input's
    draws depend on the seed and its position only, not on which inputs share the call (a service batch, a
    file's chunk). Costs one forward of ``samples`` rows per input (no padding across inputs)."""
    for i, (x, row) in enumerate(zip(inputs, rows)):
        sampled = predictor.predict([x], samples=samples, seed=input_seed(seed, start + i))  # (K, 1, C)
        add_mc_dropout([row], sampled, top_k)


def check_certify(certify: bool, task: Task) -> None:
    """Refuse ``certify`` where there is no certificate, before any model pass: SAFER smooths one label per
    text over word swaps, which this library certifies for text-classification runs only."""
    if not isinstance(certify, bool):
        raise ConfigError(f"{{certify}} must be True or False. Got {certify!r}.", fields=("certify",))
    if certify and task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            f"{{certify}} is for text-classification runs; this run is {task.value}: drop {{certify}} (caveat "
            "attack RUN measures its robustness to word swaps empirically)",
            fields=("certify",),
        )


CALIBRATED_FIELDS = ("uncertainty", "prediction_set", "decision")  # text rows of a calibrated run only


class Row(Mapping):
    """One input's row, read as attributes (``row.label``, ``row.decision``) or as a dict.

    An uncalibrated text run's rows have no ``uncertainty``, ``prediction_set`` or ``decision``: asking
    for one raises ``NotCalibratedError`` with what to call first.
    """

    def __init__(self, record: dict, *, calibrated: bool):
        self._record, self._calibrated = record, calibrated

    def __getitem__(self, key: str):
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._record:
            return self._record[name]
        if name in CALIBRATED_FIELDS and not self._calibrated:
            raise NotCalibratedError(
                f"{name} comes from the run's calibration, and this model is not calibrated: "
                "call model.calibrate() first (or caveat calibrate RUN)"
            )
        raise AttributeError(f"a row has no {name!r}; it has: {', '.join(self._record)}")

    def __repr__(self) -> str:
        return f"Row({self._record!r})"


class Results(Sequence[Row]):
    """What ``Model.predict`` returns: one ``Row`` per input, and the arrays behind them.

    Attributes
    ----------
    predictions : ``Predictions`` of the method: the deterministic pass (M = 1; temperature-scaled when the
        model is calibrated, so ``probs[0, i]`` are row ``i``'s probabilities), or the K sampled passes of
        ``mc_dropout`` / the members of ``ensemble`` (M = K, raw).
    calibrated : whether the rows carry the calibration's judgements.
    """

    def __init__(self, records: list[dict], predictions: Predictions, *, calibrated: bool):
        self._records, self.predictions, self.calibrated = records, predictions, calibrated

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [Row(r, calibrated=self.calibrated) for r in self._records[i]]
        return Row(self._records[i], calibrated=self.calibrated)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def probs(self) -> np.ndarray:
        """(M, N, C) probabilities ((M, N, T, C) for NER)."""
        return self.predictions.probs

    @property
    def labels(self) -> list[str]:
        return self.predictions.labels

    @property
    def decisions(self) -> list[str]:
        """Each input's action (answer / abstain / route); NotCalibratedError on an uncalibrated model."""
        return [row.decision for row in self]

    def to_records(self) -> list[dict]:
        """The exact rows ``caveat predict`` prints and ``POST /v1/predict`` returns (copies)."""
        return [dict(r) for r in self._records]
