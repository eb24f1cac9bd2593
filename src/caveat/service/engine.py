"""The served run: the model (through ``Predictor``), its fitted caveats, and the batch computations
the micro-batcher hands over. Everything here runs in the one model thread."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from caveat.calibration import Calibration, RunCalibration, SpanCalibration, load_calibration
from caveat.calibration.spans import sentence_logits
from caveat.calibration.store import ARRAYS_FILE
from caveat.data.load import load_data
from caveat.errors import CaveatError, ConfigError, RunDirError
from caveat.explain import ExplainModel, explain
from caveat.inference import Predictor
from caveat.models.rundir import Run, open_run
from caveat.robustness.attacks.lexicon import SYNONYM_FILE, lexicons_folder
from caveat.robustness.certify import add_certified
from caveat.robustness.certify_run import certify_sets
from caveat.rows import add_seeded_mc_dropout, predict_rows
from caveat.service.errors import RequestError
from caveat.service.metrics import Metrics
from caveat.service.validation import ExplainOptions, PredictOptions
from caveat.types import Task

if TYPE_CHECKING:
    from caveat.robustness.perturbation_sets import PerturbationSets

log = logging.getLogger(__name__)
FIELDS = {
    "span": "span",
    "label": "label",
    "target": "target",
    "method": "method",
    "samples": "samples",
    "top_k": "k",
}  # library argument -> request field, for error messages
SPAN_SCORE = "span_uncertainty"  # 1 - calibrated span confidence: the NER drift alarm's score
SPAN_REFERENCE_SENTENCES = 2000  # calibration sentences predicted at start-up for the NER drift reference


def open_served_run(run_dir: str | Path, *, allow_uncalibrated: bool) -> tuple[Run, RunCalibration | None]:
    """``(run, calibration)``: ``Calibration`` for a text run, ``SpanCalibration`` for a NER run, None when
    the run was not calibrated, which is refused unless ``allow_uncalibrated``."""
    run = open_run(run_dir)
    calibration = load_calibration(run)
    if calibration is None and not allow_uncalibrated:
        if run.task is Task.TOKEN_CLASSIFICATION:
            lost, kept = "calibrated span confidence or keep/flag decisions", "entity spans with raw confidence"
        else:
            lost, kept = "prediction sets and no answer/abstain/route decisions", "labels and probabilities"
        raise ConfigError(
            f"{run.path} is not calibrated, so it would serve no {lost}: run `caveat calibrate {run.path}` "
            f"first, or start with --allow-uncalibrated (or CAVEAT_ALLOW_UNCALIBRATED=1) to serve {kept} only"
        )
    return run, calibration


def calibration_fingerprint(run: Run) -> str | None:
    """SHA-256 (hex) of the run's calibration: the ``calibration`` entry of caveat.json as canonical JSON,
    then calibration.safetensors when there is one; None for an uncalibrated run. The same fingerprint
    on two services means the same calibration."""
    summary = run.info.get("calibration")
    if not summary:
        return None
    digest = hashlib.sha256(json.dumps(summary, sort_keys=True, separators=(",", ":")).encode())
    arrays = run.path / ARRAYS_FILE
    if arrays.is_file():
        digest.update(arrays.read_bytes())
    return digest.hexdigest()


def reread_calibration(run: Run, *, allow_uncalibrated: bool) -> tuple[RunCalibration | None, str | None]:
    """``(calibration, fingerprint)`` as the run's directory holds them now (caveat.json is read again):
    what a reload swaps in. Slow-ish (file reads): call it off the event loop. Raises ``CaveatError``
    when the directory no longer fits the served model or is no longer calibrated, and whatever
    reading a missing or corrupt file raises."""
    fresh = open_run(run.path)
    same = (fresh.task, fresh.labels, fresh.info.get("created")) == (run.task, run.labels, run.info.get("created"))
    if not same:
        raise RunDirError(
            f"{run.path} now holds another model (task, labels or creation time differ from the served run's): "
            "a calibration is only valid for the model it was fitted on; restart the service to serve the new model"
        )
    calibration = load_calibration(fresh)
    if calibration is None and not allow_uncalibrated:
        raise ConfigError(
            f"{run.path} is no longer calibrated (caveat.json has no calibration): run `caveat calibrate {run.path}` "
            "and reload again, or restart the service with --allow-uncalibrated"
        )
    return calibration, calibration_fingerprint(fresh)


def drift_reference(calibration: RunCalibration | None) -> tuple[np.ndarray | None, str]:
    """The drift alarm's reference scores (R,) and the score's name as stored with the calibration: a text
    calibration's scores on its calibration split, a NER calibration's span uncertainties, or ``(None, "none")``
    for NER runs calibrated before their reference was stored (it needs the model: ``span_drift_reference``) and
    uncalibrated runs (no drift test)."""
    if isinstance(calibration, Calibration):
        return calibration.calibration_scores, calibration.score
    if isinstance(calibration, SpanCalibration) and calibration.calibration_scores is not None:
        return calibration.calibration_scores, SPAN_SCORE
    return None, "none"


def span_drift_reference(
    predictor: Predictor, run: Run, calibration: SpanCalibration, *, limit: int = SPAN_REFERENCE_SENTENCES
) -> np.ndarray | None:
    """(S,) ``1 - confidence`` of each span the model predicts on the first ``limit`` sentences of the run's
    calibration split, with ``calibration``'s temperature and aggregate: the served spans' score on the data
    the calibration was fitted on. For runs calibrated before ``caveat calibrate`` stored these scores (the
    ``calibration_scores`` of ``SpanCalibration``): one deterministic pass; call it in the model thread. None,
    logged, when the split cannot be read (a run moved away from its data): the NER drift test is then off."""
    try:
        examples = load_data(run.config).calibration.examples[:limit]
    except (CaveatError, OSError) as err:
        log.warning("NER drift alarm off: the calibration split of %s cannot be read (%s)", run.path, err)
        return None
    if not examples:
        return None
    sentences = [list(ex.tokens) for ex in examples]
    preds = predictor.predict(sentences)
    _, confidence, _ = calibration.span_scores(sentence_logits(preds, [len(s) for s in sentences]))
    return 1.0 - np.asarray(confidence, dtype=np.float64)  # (S,)


@dataclass
class Engine:
    """Computes rows for the micro-batcher. ``load()`` must run (in the model thread) before ``run_batch``."""

    run: Run
    calibration: RunCalibration | None
    metrics: Metrics
    explain_steps: int = 50
    fingerprint: str | None = None  # of ``calibration`` (``calibration_fingerprint``)
    predictor: Predictor | None = field(default=None, repr=False)
    explainer: ExplainModel | None = field(default=None, repr=False)
    sets: PerturbationSets | None = field(default=None, repr=False)  # certify=true's, read at its first request
    _told_to_recalibrate: bool = field(default=False, init=False, repr=False)  # logged once per service

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    @property
    def score(self) -> str | None:
        """The uncertainty score the text calibration decides on (``least_confidence``, ...); None for NER or
        uncalibrated."""
        return self.calibration.score if isinstance(self.calibration, Calibration) else None

    def load(self) -> Engine:
        """Load the model (slow: call it in the model thread); it carries the calibration opened at start-up."""
        self.predictor = Predictor.from_run(self.run, calibrated=False)
        self.predictor.calibration = self.calibration
        self.explainer = ExplainModel(self.predictor)
        self._watch_spans()
        return self

    def _watch_spans(self) -> None:
        """NER calibrated before its drift reference was stored: compute the reference from the calibration
        split (needs the model); say once that calibrating again stores it."""
        cal = self.calibration
        if not isinstance(cal, SpanCalibration) or cal.calibration_scores is not None or self.predictor is None:
            return
        if not self._told_to_recalibrate:
            self._told_to_recalibrate = True
            log.warning(
                "%s was calibrated before its NER drift reference was stored, so the service computes it from the "
                "calibration split at each load and reload (up to %d sentences): run `caveat calibrate %s` again "
                "to store it and skip this pass",
                self.run.path,
                SPAN_REFERENCE_SENTENCES,
                self.run.path,
            )
        self.metrics.watch(span_drift_reference(self.predictor, self.run, cal), SPAN_SCORE)

    def use(self, calibration: RunCalibration | None, fingerprint: str | None) -> None:
        """Serve ``calibration`` from the next batch on, and test drift against its reference scores. Call it
        in the model thread: there it runs between two batches, so a batch computes every row with the
        calibration it started with (the explainer reads the predictor's)."""
        self.calibration, self.fingerprint = calibration, fingerprint
        if self.predictor is not None:
            self.predictor.calibration = calibration
        self.metrics.watch(*drift_reference(calibration))
        self._watch_spans()

    def run_batch(self, jobs: list) -> list[list[dict]]:
        """Rows of each job; all ``jobs`` share one ``batch_key`` (one forward pass for all their inputs)."""
        options = jobs[0].options
        if isinstance(options, ExplainOptions):
            self.metrics.batches.labels(kind="explain").inc()
            return [[self.explain(job.inputs[0], job.options)] for job in jobs]
        inputs = [x for job in jobs for x in job.inputs]
        self.metrics.batches.labels(kind=options.method).inc()
        self.metrics.batch_inputs.observe(len(inputs))
        rows = self._predict(inputs)  # the deterministic pass, shared by the whole batch
        out, start = [], 0
        for job in jobs:
            mine = rows[start : start + len(job.inputs)]
            start += len(job.inputs)
            if job.options.method == "mc_dropout":  # per request: its draws must not depend on its batch-mates
                add_seeded_mc_dropout(
                    self.predictor, job.inputs, mine, samples=job.options.samples, seed=job.options.seed
                )
            if job.options.certify:  # per input: a certificate must not depend on its batch-mates either
                add_certified(self.predictor, mine, self._certify_sets())
            out.append([self._finish(row, job.options) for row in mine])
        return out

    def _certify_sets(self) -> PerturbationSets:
        """The lexicon's perturbation sets, read at the first certify=true request and kept. Without PPDB synonyms
        the request is a 422, and the next one reads the folder again (fixing it needs no restart)."""
        if self.sets is None:
            try:
                self.sets = certify_sets()
            except ConfigError:
                raise RequestError(
                    f"certify=true draws synonyms from {SYNONYM_FILE}, and this service finds none in "
                    f"{lexicons_folder().absolute()}: start it with CAVEAT_LEXICONS set to the folder holding "
                    f"{SYNONYM_FILE}, or drop certify"
                ) from None
        return self.sets

    def _predict(self, inputs: list) -> list[dict]:
        # all labels; cut to each job's k in _finish
        rows = predict_rows(self.predictor, inputs, top_k=0).rows
        if isinstance(self.calibration, Calibration):
            self.metrics.drift.update(row["uncertainty"].get(self.calibration.score, np.nan) for row in rows)
            for row in rows:
                self.metrics.decisions.labels(action=row["decision"]).inc()
        elif self.calibration is not None:  # NER: each span kept or flagged
            spans = [span for row in rows for span in row["spans"] if "decision" in span]
            for span in spans:
                self.metrics.decisions.labels(action=span["decision"]).inc()
            self.metrics.drift.update(1.0 - span["confidence"] for span in spans)
        return rows

    def _finish(self, row: dict, options: PredictOptions) -> dict:
        """Cut the probabilities to the job's k and add its explanation."""
        if "probabilities" in row:
            row["probabilities"] = dict(list(row["probabilities"].items())[: options.k])
            if "mc_dropout" in row:
                mc = row["mc_dropout"]
                mc["probabilities"] = dict(list(mc["probabilities"].items())[: options.k])
        if options.explain:  # integrated gradients of the predicted label's calibrated probability
            explained = self.explain(
                row["text"], ExplainOptions(target=row["label"], options={"steps": self.explain_steps})
            )
            row["attributions"] = [{"word": w["word"], "attribution": w["attribution"]} for w in explained["words"]]
        return row

    def explain(self, text: str | list[str], options: ExplainOptions) -> dict:
        """One explanation, JSON-ready (``ExplainResponse``). What the request asks that the input does not
        allow (e.g. a span the model does not predict, with no label) is a ``RequestError`` (422)."""
        try:
            a = explain(
                self.explainer,
                text,
                method=options.method,
                target=options.target,
                span=options.span,
                label=options.label,
                seed=options.seed,
                **options.options,
            )
        except ConfigError as err:  # the message names library arguments; a request names its fields
            raise RequestError(err.render(FIELDS)) from None
        out = a.to_dict()
        out["text"] = text if isinstance(text, str) else " ".join(text)
        out["details"] = _finite(out["details"])
        return out


def _finite(value):
    """``value`` with every non-finite float as None (JSON has no NaN; the response must still be sent)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
