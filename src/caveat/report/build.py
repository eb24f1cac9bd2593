"""Build a :class:`Report`: predict once on the split (and once on each out-of-scope set), then let
each section read the shared arrays.

The expensive pass (the model) runs here only; sections are functions of a :class:`Context` and
return a ``Section`` or None when the run lacks what they show (see ``caveat.report.sections``).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
from caveat.report.schema import Report
from caveat.types import Predictions, Split, Task


@dataclass
class Context:
    """What sections read; computed once per report.

    Attributes
    ----------
    metrics : the figures ``caveat evaluate`` computes for this split (same functions, same keys).
    top : rows in the per-example tables.
    ood_sources : out-of-scope set name -> number of texts.

    Text classification (N inputs, C classes):
    y : (N,) true class ids. raw_probs : (N, C) the model's softmax. probs : (N, C) temperature-scaled
    when the run is calibrated, else ``raw_probs``. scores : name -> (N,) uncertainty, higher = more
    uncertain (the run's calibrated scores, or msp/entropy/energy of the raw model). score : the name
    of the score the abstention threshold uses (msp when uncalibrated). decision : the policy's
    ``Decision`` (calibrated runs only). ood_scores : set -> score name -> (N_set,). ood_decisions :
    set -> ``Decision``.

    Token classification: word_probs : per sentence (W, C) raw tag probabilities; pred_tags, gold_tags :
    per sentence W tags; caveats : the run's ``SpanCaveats`` when calibrated; spans : every predicted span
    as ``(sentence, start, end, type, confidence, right)``, its confidence temperature-scaled and
    aggregated as calibrated (the raw ``product`` when uncalibrated).
    """

    run: Run
    data: str
    split: Split
    metrics: dict
    top: int = 10
    ood_sources: dict[str, int] = field(default_factory=dict)
    y: np.ndarray | None = None
    raw_probs: np.ndarray | None = None
    probs: np.ndarray | None = None
    caveats: object | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    score: str = "msp"
    decision: object | None = None
    ood_scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ood_decisions: dict[str, object] = field(default_factory=dict)
    word_probs: list[np.ndarray] = field(default_factory=list)
    pred_tags: list[list[str]] = field(default_factory=list)
    gold_tags: list[list[str]] = field(default_factory=list)
    spans: list[tuple[int, int, int, str, float, bool]] = field(default_factory=list)

    @property
    def task(self) -> Task:
        return self.run.task

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    @property
    def calibrated(self) -> bool:
        return self.caveats is not None

    @property
    def pred(self) -> np.ndarray:
        """(N,) predicted class ids (temperature scaling keeps the argmax)."""
        return self.probs.argmax(-1)

    @property
    def errors(self) -> np.ndarray:
        """(N,) bool, True where the top label is wrong."""
        return self.pred != self.y


def raw_scores(preds: Predictions) -> dict[str, np.ndarray]:
    """Scores of an uncalibrated model: msp, entropy (of probs) and energy (of logits), each (N,)."""
    from caveat.uncertainty.scores import SCORES

    return {name: SCORES.get(name)(probs=preds.probs, logits=preds.logits) for name in ("msp", "entropy", "energy")}


def prepare(run: Run, data: str = "test", ood: tuple[str, ...] = (), *, top: int = 10, batch_size: int | None = None) -> Context:
    """Run the predictor once on ``data`` and once per ``ood`` set; compute the shared figures."""
    from caveat.data.load import load_data
    from caveat.evaluation.run import ood_texts, resolve_split
    from caveat.inference import Predictor
    from caveat.models.tags import bio_spans
    from caveat.training.scoring import metrics_for

    if ood and run.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError("--ood is for text-classification runs; drop it for this token-classification run")
    load = functools.cache(lambda: load_data(run.config))  # the data files are read at most once
    split = resolve_split(run, data, load)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    if run.task is Task.TOKEN_CLASSIFICATION:
        from caveat.calibrate_spans import SpanCaveats, span_scores
        from caveat.training.scoring import decode_tags
        from caveat.uncertainty.tokens import span_report

        preds = predictor.predict([ex.tokens for ex in split.examples])
        logits, probs = preds.logits[0], preds.probs[0]  # (N, W, C)
        words = [logits[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]  # per sentence (W_i, C)
        word_probs = [probs[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
        pred_tags = decode_tags(words, run.labels)
        gold_tags = [list(ex.tags) for ex in split.examples]
        metrics = metrics_for(run.task, split, run.labels, word_logits=words)
        metrics["spans"] = span_report(word_probs, pred_tags, gold_tags, run.labels)
        caveats = SpanCaveats.from_run(run)
        temperature, aggregate = (caveats.temperature, caveats.aggregate) if caveats else (1.0, "product")
        per_sentence, _, _ = span_scores(words, temperature, run.labels, aggregate)
        spans = []
        for i, (row, gold) in enumerate(zip(per_sentence, gold_tags)):
            truth = set(bio_spans(gold))
            spans += [(i, s, e, typ, float(c), (s, e, typ) in truth) for s, e, typ, c in row]
        return Context(run=run, data=data, split=split, metrics=metrics, top=top, caveats=caveats,
                       word_probs=word_probs, pred_tags=pred_tags, gold_tags=gold_tags, spans=spans)

    from caveat.calibrate import Caveats
    from caveat.evaluation.uncertainty import uncertainty_metrics

    ood_inputs = {name: ood_texts(run, name, load) for name in ood}
    preds = predictor.predict([ex.text for ex in split.examples])
    ood_preds = {name: predictor.predict(texts) for name, texts in ood_inputs.items()}
    index = {lab: i for i, lab in enumerate(run.labels)}
    y = np.array([index[ex.label] for ex in split.examples])
    caveats = Caveats.from_run(run)
    metrics = metrics_for(run.task, split, run.labels, logits=preds.logits[0])
    metrics.update(uncertainty_metrics(preds, y, caveats, ood_preds))
    ctx = Context(run=run, data=data, split=split, metrics=metrics, top=top, y=y, raw_probs=preds.probs[0],
                  ood_sources={name: len(texts) for name, texts in ood_inputs.items()})
    if caveats is None:
        ctx.probs, ctx.scores = ctx.raw_probs, raw_scores(preds)
        ctx.ood_scores = {name: raw_scores(p) for name, p in ood_preds.items()}
        return ctx
    ctx.caveats, ctx.score = caveats, caveats.score
    ctx.probs, ctx.scores, ctx.decision = caveats.decide(preds)
    for name, p in ood_preds.items():
        _, ctx.ood_scores[name], ctx.ood_decisions[name] = caveats.decide(p)
    return ctx


def build_report(run: str | Path | Run, data: str = "test", ood: tuple[str, ...] | list[str] = (), *,
                 top: int = 10, batch_size: int | None = None) -> Report:
    """The report of a run on ``data`` (a split name or a labelled file).

    Parameters
    ----------
    run : run directory (or an opened ``Run``).
    data : split name (train, validation, calibration, test) or a labelled file.
    ood : out-of-scope sets: names from the run's ``data.ood`` or files of texts (text runs only).
    top : rows in the per-example tables (most uncertain inputs, confident mistakes, ...).
    batch_size : inference batch size (default: the run's ``eval_batch_size``).

    Uses the run's calibration (``caveat calibrate``) when there is one; sections it needs are left
    out otherwise, and ``Report.notes`` says how to add them.
    """
    from caveat import __version__
    from caveat.report.sections import SECTIONS

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be an integer >= 1 (rows per example table). Got {top!r}.")
    run = run if isinstance(run, Run) else open_run(run)
    ctx = prepare(run, data, tuple(ood), top=top, batch_size=batch_size)
    sections = [s for make in SECTIONS if (s := make(ctx)) is not None]
    notes = []
    if run.task is Task.TEXT_CLASSIFICATION and not ctx.calibrated:
        notes.append(f"This run is not calibrated, so the calibrated reliability curve, the abstention operating point, "
                     f"conformal prediction sets and decisions are missing. Add them with `caveat calibrate {run.path}` "
                     f"and build the report again.")
    if run.task is Task.TEXT_CLASSIFICATION and not ood:
        notes.append(f"No out-of-scope data was given. Add out-of-scope detection with "
                     f"`caveat report {run.path} --ood FILE_OF_TEXTS` (or a data.ood name of the run).")
    if run.task is Task.TOKEN_CLASSIFICATION and not ctx.calibrated:
        notes.append(f"This run is not calibrated, so span confidences are raw and there is no keep/flag threshold. "
                     f"Add them with `caveat calibrate {run.path}` and build the report again.")
    return Report(
        title=f"caveat report: {run.path.name}",
        run=str(run.path),
        task=run.task.value,
        data=data,
        source=ctx.split.source,
        n=len(ctx.split),
        calibrated=ctx.calibrated,
        ood=list(ood),
        created=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        versions={"caveat": __version__, **{k: v for k, v in run.info.get("versions", {}).items() if k != "caveat"}},
        notes=notes,
        sections=sections,
    )
