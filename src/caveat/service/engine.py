"""The served run: the model (through ``Predictor``), its fitted caveats, and the batch computations
the micro-batcher hands over. Everything here runs in the one model thread."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
from caveat.service.errors import RequestError
from caveat.service.metrics import Metrics
from caveat.service.validation import ExplainOptions, PredictOptions
from caveat.types import Task

log = logging.getLogger(__name__)
MC_SCORES = ("entropy", "expected_entropy", "mutual_information", "variance")


def uncalibrated_reason(run: Run) -> str:
    what = ("no calibrated span confidence or keep/flag decision" if run.task is Task.TOKEN_CLASSIFICATION
            else "no prediction set or decision")
    return f"run not calibrated: {what}; run `caveat calibrate {run.path}` and restart the service"


def open_served_run(run_dir: str | Path, *, allow_uncalibrated: bool):
    """``(run, caveats)``: ``Caveats`` for a text run, ``SpanCaveats`` for a NER run, None when the run
    was not calibrated, which is refused unless ``allow_uncalibrated``."""
    from caveat.calibrate import Caveats
    from caveat.calibrate_spans import SpanCaveats

    run = open_run(run_dir)
    caveats = (SpanCaveats if run.task is Task.TOKEN_CLASSIFICATION else Caveats).from_run(run)
    if caveats is None and not allow_uncalibrated:
        if run.task is Task.TOKEN_CLASSIFICATION:
            lost, kept = "calibrated span confidence or keep/flag decisions", "entity spans with raw confidence"
        else:
            lost, kept = "prediction sets and no answer/abstain/route decisions", "labels and probabilities"
        raise ConfigError(f"{run.path} is not calibrated, so it would serve no {lost}: run `caveat calibrate {run.path}` "
                          f"first, or start with --allow-uncalibrated (or CAVEAT_ALLOW_UNCALIBRATED=1) to serve {kept} only")
    return run, caveats


@dataclass
class Engine:
    """Computes rows for the micro-batcher. ``load()`` must run (in the model thread) before ``run_batch``."""

    run: Run
    caveats: object | None
    metrics: Metrics
    explain_steps: int = 50
    predictor: object | None = field(default=None, repr=False)
    explainer: object | None = field(default=None, repr=False)  # caveat.explain.ExplainModel

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    def load(self) -> "Engine":
        """Load the model (slow: call it in the model thread)."""
        from caveat.explain import ExplainModel
        from caveat.inference import Predictor

        self.predictor = Predictor.from_run(self.run)
        temperature = getattr(self.caveats, "temperature", None)  # Caveats (text) or SpanCaveats (NER) alike
        self.explainer = ExplainModel(self.predictor, 1.0 if temperature is None else float(temperature),
                                      calibrated=temperature is not None)
        return self

    def run_batch(self, jobs: list) -> list[list[dict]]:
        """Rows of each job; all ``jobs`` share one ``batch_key`` (one forward pass for all their inputs)."""
        options = jobs[0].options
        if isinstance(options, ExplainOptions):
            self.metrics.batches.labels(kind="explain").inc()
            return [[self.explain(job.inputs[0], job.options)] for job in jobs]
        inputs = [x for job in jobs for x in job.inputs]
        self.metrics.batches.labels(kind=options.method).inc()
        self.metrics.batch_inputs.observe(len(inputs))
        rows = self._predict(inputs, options)
        out, start = [], 0
        for job in jobs:
            mine = rows[start : start + len(job.inputs)]
            start += len(job.inputs)
            out.append([self._finish(row, job.options) for row in mine])
        return out

    def _predict(self, inputs: list, options: PredictOptions) -> list[dict]:
        from caveat.cli.predict import format_rows

        preds = self.predictor.predict(inputs)
        text_caveats = self.caveats if self.run.task is Task.TEXT_CLASSIFICATION else None
        rows = format_rows(preds, inputs, self.run.task, 0, caveats=text_caveats)  # all labels; cut to k per job
        if self.caveats is None:
            reason = uncalibrated_reason(self.run)
            for row in rows:
                row["reason"] = reason
        elif self.run.task is Task.TOKEN_CLASSIFICATION:
            self._judge_spans(rows, preds)
        else:
            self.metrics.drift.update(row["uncertainty"].get(self.caveats.score, np.nan) for row in rows)
            for row in rows:
                self.metrics.decisions.labels(action=row["decision"]).inc()
        if options.method == "mc_dropout":
            self._add_mc_dropout(rows, inputs, options.samples)
        return rows

    def _judge_spans(self, rows: list[dict], preds) -> None:
        """Add each span's calibrated ``confidence``, ``decision`` (keep / flag) and ``reason`` (SpanCaveats)."""
        for decision in self.caveats.annotate(rows, preds):
            self.metrics.decisions.labels(action=decision).inc()

    def _add_mc_dropout(self, rows: list[dict], inputs: list, samples: int) -> None:
        from caveat.uncertainty.scores import SCORES

        mc = self.predictor.predict(inputs, samples=samples)  # probs (K, N, C)
        mean = mc.probs.mean(axis=0)  # (N, C)
        scores = {name: SCORES.get(name)(probs=mc.probs) for name in MC_SCORES}  # each (N,)
        for i, row in enumerate(rows):
            order = np.argsort(-mean[i])
            row["mc_dropout"] = {"samples": samples, "label": self.labels[order[0]], "probability": float(mean[i, order[0]]),
                                 "probabilities": {self.labels[j]: float(mean[i, j]) for j in order},
                                 "uncertainty": {name: float(v[i]) for name, v in scores.items()}}

    def _finish(self, row: dict, options: PredictOptions) -> dict:
        """Cut the probabilities to the job's k and add its explanation."""
        if "probabilities" in row:
            row["probabilities"] = dict(list(row["probabilities"].items())[: options.k])
            if "mc_dropout" in row:
                mc = row["mc_dropout"]
                mc["probabilities"] = dict(list(mc["probabilities"].items())[: options.k])
        if options.explain:  # integrated gradients of the predicted label's calibrated probability
            explained = self.explain(row["text"], ExplainOptions(target=row["label"], options={"steps": self.explain_steps}))
            row["attributions"] = [{"word": w["word"], "attribution": w["attribution"]} for w in explained["words"]]
        return row

    def explain(self, text: str | list[str], options: ExplainOptions) -> dict:
        """One explanation, JSON-ready (``ExplainResponse``). What the request asks that the input does not
        allow (e.g. a span the model does not predict, with no label) is a ``RequestError`` (422)."""
        from caveat.explain import explain

        try:
            a = explain(self.explainer, text, method=options.method, target=options.target, span=options.span,
                        label=options.label, seed=options.seed, **options.options)
        except ConfigError as err:  # caveat.explain names CLI flags; a request names fields
            raise RequestError(re.sub(r"--(span|label|target)\b", r"\1", str(err))) from None
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
