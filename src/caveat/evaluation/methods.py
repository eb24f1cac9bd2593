"""Uncertainty methods side by side: each registered by name, each timed against one deterministic pass.

A method turns a run's inputs into probabilities ``(N, C)`` and one uncertainty score ``(N,)``
(higher = more uncertain) for the in-scope inputs and for each out-of-scope set. The deterministic
pass is run once and shared by every method that only post-processes it (``least_confidence``, ``energy``,
``mahalanobis``, ``laplace``, ...), so those cost that pass plus their own arithmetic; sampling
methods (``mc_dropout``, ``ensemble``) run their own passes. ``cost_ratio`` is each method's wall time
over the deterministic pass's, both measured in the same call.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

from caveat.calibration import Calibration
from caveat.data.resolve import resolve_split
from caveat.errors import ConfigError
from caveat.evaluation import calibration as cm
from caveat.evaluation.uncertainty import selective
from caveat.inference import Predictor, member_predictions, stack_members
from caveat.models.encoding import encode_texts
from caveat.models.rundir import Run
from caveat.progress import subject
from caveat.registry import Registry
from caveat.types import Predictions, Task
from caveat.uncertainty.methods.laplace_lora import TUNE_GRID, LaplaceLoRA
from caveat.uncertainty.scores import SCORES, resolve_score_name


@dataclass
class Context:
    """What the methods share: the predictor, the inputs, and the deterministic pass (run once)."""

    run: Run
    predictor: Predictor
    texts: list[str]
    ood_texts: dict[str, list[str]]
    caveats: Calibration | None
    base: Predictions
    base_ood: dict[str, Predictions]
    base_seconds: float
    mc_samples: int = 10
    mc_top_layers: int | None = None
    cache: dict = field(default_factory=dict)

    def logits(self, p: Predictions) -> np.ndarray:
        """(N, C) logits, temperature-scaled when the run is calibrated."""
        return self.caveats.scale(p.logits[0]) if self.caveats is not None else p.logits[0]


@dataclass
class Output:
    """Probabilities (N, C), the score (N,) of in-scope inputs, each OOD set's score, and the cost."""

    probs: np.ndarray
    score: np.ndarray
    ood: dict[str, np.ndarray]
    seconds: float
    score_name: str
    fitted: dict = field(default_factory=dict)  # what the method chose on held-out data, reported in its row


Method = Callable[[Context], Output]
METHODS: Registry[Method] = Registry("uncertainty method")
CHEAP = ("least_confidence", "entropy", "margin", "max_logit", "energy")  # post-processing of the deterministic pass
NEEDS_CALIBRATION = ("mahalanobis", "knn", "laplace")


def _post(name: str, fn: Callable[[Context, Predictions], tuple[np.ndarray, np.ndarray]]) -> Method:
    """A method that post-processes the shared deterministic pass: cost = that pass + its own time."""

    def method(ctx: Context) -> Output:
        start = time.perf_counter()
        probs, score = fn(ctx, ctx.base)
        extra = time.perf_counter() - start
        ood = {k: fn(ctx, p)[1] for k, p in ctx.base_ood.items()}
        return Output(probs, score, ood, ctx.base_seconds + extra, name)

    return method


def _score_method(name: str) -> Method:

    score = SCORES.get(name)

    def fn(ctx: Context, p: Predictions) -> tuple[np.ndarray, np.ndarray]:
        z = ctx.logits(p)
        probs = softmax(z, axis=-1)
        return probs, score(probs=probs[None], logits=z[None])

    return _post(name, fn)


for _name in CHEAP:
    METHODS.register(_name)(_score_method(_name))


def _calibrated(ctx: Context, what: str):
    if ctx.caveats is None:
        raise ConfigError(f"method {what!r} is fitted by caveat calibrate; run caveat calibrate {ctx.run.path} first")
    fitted = getattr(ctx.caveats, what)
    if fitted is None:
        raise ConfigError(
            f"{ctx.run.path} was calibrated before {what} existed; run caveat calibrate {ctx.run.path} again"
        )
    return fitted


def _mahalanobis(ctx: Context, p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Lee et al. 2018: distance of the penultimate features to the nearest class mean (shared covariance)."""
    return softmax(ctx.logits(p), axis=-1), _calibrated(ctx, "mahalanobis").score(p.features)


def _knn(ctx: Context, p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Sun et al. 2022: cosine distance of the penultimate features to the nearest training feature."""
    return softmax(ctx.logits(p), axis=-1), _calibrated(ctx, "knn").score(p.features)


def _laplace(ctx: Context, p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Daxberger et al. 2021: last-layer Laplace, probit predictive; scored by its entropy."""

    probs = _calibrated(ctx, "laplace").predict(p.features)
    return probs, SCORES.get("entropy")(probs=probs[None])


METHODS.register("mahalanobis")(_post("mahalanobis", _mahalanobis))
METHODS.register("knn")(_post("knn", _knn))
METHODS.register("laplace")(_post("entropy", _laplace))


def _sampled(ctx: Context, predict: Callable[[list[str]], Predictions], name: str) -> Output:
    """Predictive entropy of the mean of M stochastic predictions (MC dropout)."""

    entropy = SCORES.get("entropy")
    start = time.perf_counter()
    preds = predict(ctx.texts)
    seconds = time.perf_counter() - start
    ood_preds = {}
    for k, t in ctx.ood_texts.items():
        with subject(f"out-of-scope {k}"):
            ood_preds[k] = predict(t)
    ctx.cache[name] = (preds, ood_preds)  # evaluate reports more scores of the same samples
    ood = {k: entropy(probs=p.probs.mean(0)[None]) for k, p in ood_preds.items()}
    probs = preds.probs.mean(0)
    return Output(probs, entropy(probs=probs[None]), ood, seconds, "entropy")


@METHODS.register("mc_dropout")
def mc_dropout(ctx: Context) -> Output:
    """Gal & Ghahramani 2016; with ``mc_top_layers`` only the top layers and the head are sampled."""
    return _sampled(
        ctx, lambda t: ctx.predictor.predict(t, samples=ctx.mc_samples, top_layers=ctx.mc_top_layers), "mc_dropout"
    )


def _member_passes(ctx: Context) -> tuple[list[Predictions], dict[str, list[Predictions]], float]:
    """Each ensemble member's deterministic pass over the inputs and each OOD set, run once and shared by
    ``ensemble`` and ``ensemble_knn``; the seconds are those of the in-scope passes."""
    if "member_passes" not in ctx.cache:
        members = ctx.predictor.ensemble()
        start = time.perf_counter()
        preds = member_predictions(members, ctx.texts)
        seconds = time.perf_counter() - start
        ood = {}
        for k, t in ctx.ood_texts.items():
            with subject(f"out-of-scope {k}"):
                ood[k] = member_predictions(members, t)
        ctx.cache["member_passes"] = (preds, ood, seconds)
    return ctx.cache["member_passes"]


@METHODS.register("ensemble")
def ensemble(ctx: Context) -> Output:
    """Lakshminarayanan et al. 2017: the run's deep-ensemble members (``caveat train --ensemble N``), scored by the
    entropy of their pool; on a calibrated run the pool is the one fitted on the calibration split (mean
    probability or mean log-probability) scaled by the ensemble's own temperature (``Calibration.pool``)."""
    preds, ood, seconds = _member_passes(ctx)
    pool = ctx.caveats.pool if ctx.caveats is not None else (lambda p: p.probs.mean(0))
    stacked, stacked_ood = stack_members(preds), {k: stack_members(v) for k, v in ood.items()}
    ctx.cache["ensemble"] = (stacked, stacked_ood)  # evaluate reports more scores of the same passes
    entropy = SCORES.get("entropy")
    probs = pool(stacked)
    return Output(
        probs,
        entropy(probs=probs[None]),
        {k: entropy(probs=pool(p)[None]) for k, p in stacked_ood.items()},
        seconds,
        "entropy",
    )


@METHODS.register("ensemble_knn")
def ensemble_knn(ctx: Context) -> Output:
    """The nearest-neighbour distance (Sun et al. 2022) of each ensemble member's features to its own training
    features, averaged over the members (banks stored by ``caveat calibrate``); the ensemble's calibrated pool
    as probabilities. Cost: the members' passes plus the distances."""
    _calibrated(ctx, "knn")  # a clear error on an uncalibrated run, before the members' passes
    preds, ood, seconds = _member_passes(ctx)
    start = time.perf_counter()
    score = ctx.caveats.ensemble_knn_score([p.features for p in preds])
    seconds += time.perf_counter() - start
    ood_scores = {k: ctx.caveats.ensemble_knn_score([p.features for p in v]) for k, v in ood.items()}
    return Output(ctx.caveats.pool(stack_members(preds)), score, ood_scores, seconds, "knn")


LAPLACE_LORA_TRAIN = 1000  # training inputs Laplace-LoRA is fitted on (a seeded subset of larger splits)
LAPLACE_LORA_TUNE = 500  # calibration inputs its prior precision is tuned on (held-out NLL); 200 when sampling
LAPLACE_LORA_SAMPLED_GRID = TUNE_GRID[::5]  # 1e-3 .. 1e7, 9 values: each costs K forwards per tuning input
LAPLACE_LORA_PROBIT_CLASSES = 20  # beyond, C backward passes per input cost too much: sample the weights
LAPLACE_LORA_BATCH = 16  # inputs per Jacobian pass (memory: 8 B C P bytes)


def _lora_batches(predictor: Predictor, texts: list[str], labels: list[int] | None = None) -> list[dict]:
    rows = encode_texts(predictor.tokenizer, texts, predictor.max_length, labels)
    return [predictor.collate(rows[i : i + LAPLACE_LORA_BATCH]) for i in range(0, len(rows), LAPLACE_LORA_BATCH)]


def _fit_laplace_lora(ctx: Context) -> LaplaceLoRA:
    """Laplace-LoRA fitted on up to ``LAPLACE_LORA_TRAIN`` inputs of the run's train split (seeded by the
    run's seed; the curvature scaled to the whole split), its prior precision tuned by NLL on up to
    ``LAPLACE_LORA_TUNE`` inputs of the calibration split. Yang et al. 2024 choose the prior by the marginal
    likelihood; on a run fine-tuned for one epoch the evidence's choice gave a predictive under-confident enough
    to lose to temperature scaling (SST-2: NLL 0.272 against 0.238), and temperature scaling itself is fitted on
    the calibration split, so the two are compared on equal terms. On a calibrated run the predictive is built
    on the run's temperature-scaled logits, as every other method here is (``Context.logits``): temperature
    scaling is then its strong-prior limit, and the prior tuned on calibration adds spread only where held-out NLL
    gains from it (CLINC150 LoRA, untempered: NLL 0.2355 against temperature scaling's 0.2331). The temperature
    stays the run's: tuning it with the prior on the same 250 inputs chose prior 3.2e4 and T 1.00 (the run's
    1.20) on CLINC150 and lost on test (NLL 0.2356 against 0.2331), fitting the noise of 10 sampled adapters. Beyond
    ``LAPLACE_LORA_PROBIT_CLASSES`` classes the fit samples one label per input for the curvature (one backward
    pass, not C) and the predictive samples LoRA weights."""
    run, peft = ctx.run, ctx.run.config.model.peft.method
    if peft != "lora":
        raise ConfigError(
            f"method 'laplace_lora' needs a LoRA run (trained with model.peft.method=lora); {run.path} has "
            f"model.peft.method={peft}: use the last-layer method 'laplace' (after caveat calibrate) instead"
        )
    if run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(f"method 'laplace_lora' is for text-classification runs; {run.path} is {run.task.value}")
    many = len(run.labels) > LAPLACE_LORA_PROBIT_CLASSES
    la = LaplaceLoRA(
        link="sample" if many else "probit",
        samples=ctx.mc_samples,
        seed=run.config.seed,
        fisher="sampled" if many else "exact",
        temperature=1.0 if ctx.caveats is None else ctx.caveats.temperature,
    )
    examples = resolve_split(run, "train").examples
    texts, labels = _seeded_share(run, examples, LAPLACE_LORA_TRAIN)
    la.fit(ctx.predictor.model, _lora_batches(ctx.predictor, texts, labels), data_size=len(examples))
    held_out = resolve_split(run, "calibration").examples
    texts, labels = _seeded_share(run, held_out, LAPLACE_LORA_TUNE // 2 if many else LAPLACE_LORA_TUNE)
    if texts:
        grid = LAPLACE_LORA_SAMPLED_GRID if many else None
        with warnings.catch_warnings():  # a prior on the grid's edge is said in the row (fitted.grid_edge)
            warnings.simplefilter("ignore", UserWarning)
            la.tune_prior_precision(ctx.predictor.model, _lora_batches(ctx.predictor, texts, labels), grid)
    return la


def _seeded_share(run: Run, examples: list, n: int) -> tuple[list[str], list[int]]:
    """Texts and class ids of up to ``n`` of ``examples`` (seeded by the run's seed, in file order); examples
    whose label the run does not know (a calibration file with other labels) are left out."""
    known = [e for e in examples if e.label in run.labels]
    keep = np.sort(np.random.default_rng(run.config.seed).permutation(len(known))[:n])
    return [known[i].text for i in keep], [run.labels.index(known[i].label) for i in keep]


@METHODS.register("laplace_lora")
def laplace_lora(ctx: Context) -> Output:
    """Yang et al. 2024 (Laplace-LoRA): a KFAC Laplace posterior over the LoRA weights (LoRA runs only; prior
    tuned on the calibration split, see ``_fit_laplace_lora``), the linearised model's probit predictive (more
    than 20 classes: ``mc_samples`` forwards with sampled weights); scored by its entropy. The fit is cached in
    ``ctx.cache``; ``seconds`` counts the predictive passes only (F + C backward passes per input, or K
    forwards), as the calibrated methods do not count their fit."""
    if "laplace_lora_fit" not in ctx.cache:
        ctx.cache["laplace_lora_fit"] = _fit_laplace_lora(ctx)
    fitted, model, entropy = ctx.cache["laplace_lora_fit"], ctx.predictor.model, SCORES.get("entropy")
    start = time.perf_counter()
    probs = fitted.predict(model, _lora_batches(ctx.predictor, ctx.texts))
    seconds = time.perf_counter() - start
    ood = {
        k: entropy(probs=fitted.predict(model, _lora_batches(ctx.predictor, t))[None]) for k, t in ctx.ood_texts.items()
    }
    chosen = {
        "prior_precision": fitted.fitted_prior_precision,
        "temperature": fitted.temperature,
        "grid_edge": fitted.grid_edge,  # "strongest": no spread helped on calibration (temperature scaling's end)
    }
    return Output(probs, entropy(probs=probs[None]), ood, seconds, "entropy", chosen)


def parse_methods(spec: str | list[str] | tuple[str, ...] | None, calibrated: bool) -> list[str]:
    """``"least_confidence,energy"`` -> names, checked against the registry; None -> every method the run
    supports without extra passes (the cheap scores, plus Mahalanobis and Laplace once calibrated). An old
    score name (``msp``) is taken as the current one, with a ``DeprecationWarning``."""
    if spec is None:
        return [*CHEAP, *(NEEDS_CALIBRATION if calibrated else ())]
    names = [n.strip() for part in ([spec] if isinstance(spec, str) else spec) for n in part.split(",") if n.strip()]
    if not names:
        raise ConfigError(
            f"{{methods}} {spec!r} names no method; choose from {', '.join(METHODS.names())}", fields=("methods",)
        )
    for i, name in enumerate(names):  # "msp" -> "least_confidence"; the warning points at evaluate_run's caller
        names[i] = resolve_score_name(name, stacklevel=4)  # (evaluate_run -> _text_metrics -> parse_methods)
    for name in names:
        METHODS.get(name)  # unknown names raise with the list
    return list(dict.fromkeys(names))


def method_metrics(ctx: Context, y: np.ndarray, names: list[str]) -> dict:
    """Per method: calibration and selective figures of its probabilities and score, OOD AUROC and
    FPR@95 per out-of-scope set, and ``cost_ratio``."""

    out = {}
    for name in names:
        res = METHODS.get(name)(ctx)
        row = {
            "score": res.score_name,
            **selective(res.probs, y, res.score),
            "cost_ratio": res.seconds / ctx.base_seconds,
        }
        if res.fitted:
            row["fitted"] = res.fitted
        if res.ood:
            row["ood_auroc"] = {k: cm.ood_auroc(res.score, s) for k, s in res.ood.items()}
            row["fpr95"] = {k: cm.fpr_at_95_tpr(res.score, s) for k, s in res.ood.items()}
        out[name] = row
    return out
