"""The served run: the model (through ``Predictor``), its fitted caveats, and the batch computations
the micro-batcher hands over. Everything here runs in the one model thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
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

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    def load(self) -> "Engine":
        """Load the model (slow: call it in the model thread)."""
        from caveat.inference import Predictor

        self.predictor = Predictor.from_run(self.run)
        return self

    def run_batch(self, jobs: list) -> list[list[dict]]:
        """Rows of each job; all ``jobs`` share one ``batch_key`` (one forward pass for all their inputs)."""
        options = jobs[0].options
        if isinstance(options, ExplainOptions):
            self.metrics.batches.labels(kind="explain").inc()
            return [[self.explain(job.inputs[0], target=job.options.target, steps=job.options.steps)] for job in jobs]
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
        if options.explain:
            target = self.labels.index(row["label"])
            attribution = self.explain(row["text"], target=target, steps=self.explain_steps)
            row["attributions"] = attribution["words"]
        return row

    def explain(self, text: str, *, target: int | None, steps: int) -> dict:
        """Integrated-gradients attributions of one text, JSON-ready (``ExplainResponse``)."""
        from caveat.explain import integrated_gradients

        p = self.predictor
        a = integrated_gradients(p.model, p.tokenizer, text, target=target, steps=steps, max_length=p.max_length)
        return {"text": text, "label": self.labels[a.target], "predicted_label": self.labels[a.predicted], "steps": a.steps,
                "output": a.output, "baseline_output": a.baseline_output, "delta": a.delta,
                "words": [{"word": w, "attribution": float(v)} for w, v in zip(a.words, a.word_attributions)],
                "tokens": [{"token": t, "word": w, "attribution": float(v)}
                           for t, w, v in zip(a.tokens, a.token_words, a.token_attributions)]}
