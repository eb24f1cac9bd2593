"""What the report's sections read: the run's predictions on one split (and on each out-of-scope set),
computed once by ``prepare`` and shared as a :class:`Context`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from caveat.calibration import Calibration, SpanCalibration
from caveat.calibration.spans import span_scores
from caveat.data.load import load_data
from caveat.data.resolve import ood_texts, resolve_split
from caveat.decide.policy import Decision
from caveat.errors import ConfigError
from caveat.evaluation.metrics import metrics_for
from caveat.evaluation.uncertainty import uncertainty_metrics
from caveat.inference import Predictor
from caveat.models.rundir import Run
from caveat.models.tags import bio_spans, decode_tags
from caveat.progress import subject
from caveat.types import Predictions, Split, Task
from caveat.uncertainty.scores import SCORES
from caveat.uncertainty.tokens import span_report


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
    uncertain (the run's calibrated scores, or least_confidence/entropy/energy of the raw model). score : the
    name of the score the abstention threshold uses (least_confidence when uncalibrated). decision : the policy's
    ``Decision`` (calibrated runs only). ood_scores : set -> score name -> (N_set,). ood_decisions :
    set -> ``Decision``.

    Token classification: word_probs : per sentence (W, C) raw tag probabilities; pred_tags, gold_tags :
    per sentence W tags; caveats : the run's ``SpanCalibration`` when calibrated; spans : every predicted span
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
    caveats: Calibration | SpanCalibration | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    score: str = "least_confidence"
    decision: Decision | None = None
    ood_scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ood_decisions: dict[str, Decision] = field(default_factory=dict)
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
    """Scores of an uncalibrated model: least_confidence, entropy (of probs) and energy (of logits), each (N,)."""
    names = ("least_confidence", "entropy", "energy")
    return {name: SCORES.get(name)(probs=preds.probs, logits=preds.logits) for name in names}


def prepare(
    run: Run, data: str = "test", ood: tuple[str, ...] = (), *, top: int = 10, batch_size: int | None = None
) -> Context:
    """Run the predictor once on ``data`` and once per ``ood`` set; compute the shared figures."""
    if ood and run.task is Task.TOKEN_CLASSIFICATION:
        raise ConfigError(
            "{ood} is for text-classification runs; drop it for this token-classification run", fields=("ood",)
        )
    load = functools.cache(lambda: load_data(run.config))  # the data files are read at most once
    split = resolve_split(run, data, load)
    predictor = Predictor.from_run(run, batch_size=batch_size)
    if run.task is Task.TOKEN_CLASSIFICATION:
        return _prepare_spans(run, data, split, predictor, top)
    return _prepare_texts(run, data, split, predictor, top, {name: ood_texts(run, name, load) for name in ood})


def _prepare_spans(run: Run, data: str, split: Split, predictor: Predictor, top: int) -> Context:
    """NER: word probabilities, Viterbi and gold tags, and every predicted span with its confidence."""
    with subject(data):
        preds = predictor.predict([ex.tokens for ex in split.examples])
    logits, probs = preds.logits[0], preds.probs[0]  # (N, W, C)
    words = [logits[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]  # per sentence (W_i, C)
    word_probs = [probs[i, : len(ex.tokens)] for i, ex in enumerate(split.examples)]
    pred_tags = decode_tags(words, run.labels)
    gold_tags = [list(ex.tags) for ex in split.examples]
    metrics = metrics_for(run.task, split, run.labels, word_logits=words)
    metrics["spans"] = span_report(word_probs, pred_tags, gold_tags, run.labels)
    calibration = predictor.calibration
    if calibration is not None:
        per_sentence, _, _ = calibration.span_scores(words)
    else:  # the raw product of the words' probabilities
        per_sentence, _, _ = span_scores(words, 1.0, run.labels, "product")
    spans = []
    for i, (row, gold) in enumerate(zip(per_sentence, gold_tags)):
        truth = set(bio_spans(gold))
        spans += [(i, s, e, typ, float(c), (s, e, typ) in truth) for s, e, typ, c in row]
    return Context(
        run=run,
        data=data,
        split=split,
        metrics=metrics,
        top=top,
        caveats=calibration,
        word_probs=word_probs,
        pred_tags=pred_tags,
        gold_tags=gold_tags,
        spans=spans,
    )


def _prepare_texts(
    run: Run, data: str, split: Split, predictor: Predictor, top: int, ood_inputs: dict[str, list[str]]
) -> Context:
    """Text classification: probabilities, scores and, when calibrated, the policy's decisions."""
    with subject(data):
        preds = predictor.predict([ex.text for ex in split.examples])
    ood_preds = {}
    for name, texts in ood_inputs.items():
        with subject(f"out-of-scope {name}"):
            ood_preds[name] = predictor.predict(texts)
    index = {lab: i for i, lab in enumerate(run.labels)}
    y = np.array([index[ex.label] for ex in split.examples])
    calibration = predictor.calibration
    metrics = metrics_for(run.task, split, run.labels, logits=preds.logits[0])
    metrics.update(uncertainty_metrics(preds, y, calibration, ood_preds))
    ctx = Context(
        run=run,
        data=data,
        split=split,
        metrics=metrics,
        top=top,
        y=y,
        raw_probs=preds.probs[0],
        ood_sources={name: len(texts) for name, texts in ood_inputs.items()},
    )
    if calibration is None:
        ctx.probs, ctx.scores = ctx.raw_probs, raw_scores(preds)
        ctx.ood_scores = {name: raw_scores(p) for name, p in ood_preds.items()}
        return ctx
    ctx.caveats, ctx.score = calibration, calibration.score
    ctx.probs, ctx.scores, ctx.decision = calibration.decide(preds)
    for name, p in ood_preds.items():
        _, ctx.ood_scores[name], ctx.ood_decisions[name] = calibration.decide(p)
    return ctx
