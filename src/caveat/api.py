"""The Python API: one object, ``caveat.Model``, that carries a run's calibration and gives its caveats.

>>> import caveat
>>> model = caveat.train("examples/intents.yaml", out="runs/demo")          # doctest: +SKIP
>>> model.calibrate(target_risk=0.05)                                      # doctest: +SKIP
>>> out = model.predict(["where is my parcel"])                            # doctest: +SKIP
>>> out[0].label, out[0].decision, out[0].reason                           # doctest: +SKIP
>>> out.probs.shape                                                        # doctest: +SKIP
(1, 1, 8)

Every method calls the same library function as its CLI command (``caveat calibrate``, ``predict``,
``evaluate``, ``explain``, ``attack``, ``report``, ``export``), and ``Model.predict`` returns the rows that
``caveat predict`` prints and ``POST /v1/predict`` returns (``caveat.rows``). The module-level
functions of earlier releases (``caveat.predict(run, texts)``, ``caveat.evaluate(run)``,
``caveat.attack(run)``) are thin aliases of these methods.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from caveat.calibration import RunCalibration, load_calibration
from caveat.calibration.run import calibrate_run
from caveat.config import RunConfig, load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.explain import Attribution, ExplainModel, explain
from caveat.inference import Predictor, ensemble_predict
from caveat.models.describe import describe_run
from caveat.models.rundir import Run, open_run
from caveat.report.build import build_report
from caveat.report.html import write_report
from caveat.robustness.certify import add_certified
from caveat.robustness.certify_run import certify_run, certify_sets
from caveat.robustness.compare import AttackSettings, compare_runs, write_compare
from caveat.robustness.perturbation_sets import PerturbationSets
from caveat.robustness.run import attack_run
from caveat.rows import Results, check_certify, predict_rows
from caveat.training.ensemble import train_ensemble
from caveat.training.export import export_run
from caveat.training.importing import run_import
from caveat.training.run import run_training
from caveat.training.select import sweep
from caveat.types import Task
from caveat.uncertainty.scores import resolve_score_name


class Model:
    """A run directory opened once: its model, its labels and its calibration.

    Staged like the stages it wraps: ``calibrate`` returns ``self``; predictions before it come without
    decisions (said once, as a warning), and decision-only fields raise ``NotCalibratedError``.
    """

    def __init__(self, run: Run, *, batch_size: int | None = None):
        self.run, self.batch_size = run, batch_size
        self.calibration: RunCalibration | None = load_calibration(run)  # loaded once; None before calibrate
        self._predictor: Predictor | None = None
        self._sets: PerturbationSets | None = None  # certify=True's lexicon, read on first use
        self._warned = False

    def __repr__(self) -> str:
        state = "calibrated" if self.calibrated else "not calibrated"
        return f"caveat.Model({str(self.path)!r}, {self.task.value}, {len(self.labels)} labels, {state})"

    @property
    def path(self) -> Path:
        return self.run.path

    def __fspath__(self) -> str:  # a Model stands for its run directory wherever a path is expected
        return str(self.path)

    @property
    def task(self) -> Task:
        return self.run.task

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def info(self) -> dict:
        """What the run is (``caveat info``): task, labels, backbone, data, training, calibration, versions."""
        return describe_run(self.run)

    @property
    def predictor(self) -> Predictor:
        """The inference engine, loaded on first use; it carries the model's calibration."""
        if self._predictor is None:
            self._predictor = Predictor.from_run(self.run, batch_size=self.batch_size, calibrated=False)
            self._predictor.calibration = self.calibration
        return self._predictor

    @property
    def certify_sets(self) -> PerturbationSets:
        """The perturbation sets ``predict(certify=True)`` draws from: the PPDB synonyms of the lexicon folder
        ``caveat certify`` reads by default ($CAVEAT_LEXICONS, else <data root>/lexicons), read once."""
        if self._sets is None:
            self._sets = certify_sets()
        return self._sets

    def calibrate(
        self,
        *,
        ood: Sequence[str] = (),
        ood_rate: float | None = None,
        target_risk: float = 0.02,
        delta: float = 0.05,
        alpha: float = 0.1,
        conformal: str = "lac",
        score: str = "least_confidence",
        target: Sequence[str] = (),
        target_texts: Sequence[str] = (),
    ) -> Model:
        """Fit the calibration on the run's calibration split (``caveat calibrate``), save it in the run
        directory and use it from now on; returns ``self``. ``target`` (files) or ``target_texts`` (texts):
        unlabelled inputs of the domain the model will serve, to calibrate for it. ``score="msp"`` (the old
        name of ``least_confidence``) still works, with a ``DeprecationWarning``. See
        ``caveat.calibration.run.calibrate_run``."""
        score = resolve_score_name(score)  # warns at the caller's line, so calibrate_run does not again
        calibrate_run(
            self.run,
            alpha=alpha,
            conformal=conformal,
            score=score,
            target_risk=target_risk,
            delta=delta,
            ood=list(ood),
            ood_rate=ood_rate,
            target=list(target),
            target_texts=list(target_texts),
            batch_size=self.batch_size,
        )
        self.calibration = load_calibration(self.run)  # calibrate_run updated self.run.info
        if self._predictor is not None:
            self._predictor.calibration = self.calibration
        return self

    def predict(
        self,
        inputs: Sequence[str] | Sequence[Sequence[str]],
        *,
        method: str = "deterministic",
        samples: int = 10,
        seed: int = 0,
        top_k: int = 0,
        certify: bool = False,
    ) -> Results:
        """Rows for texts (or word lists for NER): label, probability, and when calibrated uncertainty,
        prediction set, decision and reason (NER: spans kept or flagged). ``method``: ``deterministic``,
        ``mc_dropout`` (adds ``mc_dropout`` from ``samples`` passes) or ``ensemble`` (the run's members).

        ``certify=True`` (text-classification runs) adds ``certified`` to each row: whether the smoothed
        prediction provably survives swapping up to 20% of the words for PPDB synonyms (SAFER; the
        ``certify_sets`` lexicon), with ``prediction``, ``p_a_lower``, ``tv_bound``, ``changed``, ``words``,
        ``samples`` and ``delta``. Fewer draws than ``caveat certify`` for latency (``certify.CERTIFY``:
        100, plus 10 that choose the class; 111 model passes per text): with all 100 draws agreeing,
        ``p_a_lower`` is 0.97 at delta 0.05. Seeded by the text (``certify.certify_seed``), so a row's
        certificate is the same alone or among other inputs; other settings: ``caveat.robustness.certify.certify``."""
        if isinstance(inputs, str):
            raise ConfigError(f"inputs must be a list of texts; got one string {inputs[:40]!r}: wrap it in a list")
        check_certify(certify, self.task)
        sets = self.certify_sets if certify else None  # a folder without synonyms fails before any model pass
        if method == "ensemble":
            served = predict_rows(self.predictor, inputs, top_k=top_k)
            predictions = ensemble_predict(self.predictor.ensemble(), list(inputs), first=served.predictions)
        else:
            served = predict_rows(self.predictor, inputs, top_k=top_k, method=method, samples=samples, seed=seed)
            predictions = served.sampled
        if predictions is None:
            raw = served.predictions
            predictions = self.predictor.calibrate(raw) if self.calibrated else raw
        if sets is not None:
            add_certified(self.predictor, served.rows, sets)
        if not self.calibrated and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self.path} is not calibrated: rows have no uncertainty, prediction set or decision; "
                "call model.calibrate() first",
                UserWarning,
                stacklevel=2,
            )
        return Results(served.rows, predictions, calibrated=self.calibrated)

    def evaluate(
        self,
        data: str = "test",
        *,
        ood: Sequence[str] = (),
        methods: str | list[str] | None = None,
        mc_samples: int = 0,
        mc_top_layers: int | None = None,
        ensemble: bool = False,
        shift: Sequence[str] | dict[str, str] = (),
        explain: dict | None = None,
        write: bool = True,
        adversarial: Sequence[str] | dict[str, str] = (),
    ) -> dict:
        """Metrics on a split name or a labelled file (``caveat evaluate``; keys in docs/metrics.md);
        ``shift`` and ``adversarial``: named labelled sets (``["name=FILE", ...]``) scored beside it."""
        return evaluate_run(
            self.run,
            data,
            ood=list(ood),
            methods=methods,
            mc_samples=mc_samples,
            mc_top_layers=mc_top_layers,
            ensemble=ensemble,
            batch_size=self.batch_size,
            write=write,
            shift=shift,
            explain=explain,
            adversarial=adversarial,
        )

    def explain(
        self,
        text: str | Sequence[str],
        *,
        method: str = "ig",
        target: str = "predicted",
        span: str | None = None,
        label: str | None = None,
        seed: int = 0,
        **options,
    ) -> Attribution:
        """Word attributions of one input (``caveat explain``): of a label's calibrated probability, of the
        uncertainty (``target="uncertainty"``), or of a NER span (``span``)."""
        return explain(
            ExplainModel(self.predictor),
            text,
            method=method,
            target=target,
            span=span,
            label=label,
            seed=seed,
            **options,
        )

    def attack(self, data: str = "test", attacks: str | Sequence[str] = "greedy", **options) -> dict:
        """Attack the model on ``data`` (``caveat attack``; ``options``: ``attack_run``'s, e.g. ``max_examples``)."""
        options.setdefault("batch_size", self.batch_size)
        return attack_run(self.run, data, attacks, **options)

    def certify(self, data: str = "test", **options) -> dict:
        """Certified robustness to word substitutions on ``data`` (SAFER; ``caveat certify``; ``options``:
        ``certify_run``'s, e.g. ``max_examples``, ``samples``)."""
        options.setdefault("batch_size", self.batch_size)
        return certify_run(self.run, data, **options)

    def report(
        self, data: str | None = None, *, ood: Sequence[str] = (), out: str | Path | None = None, top: int = 10
    ) -> Path:
        """Write the self-contained HTML report (and report.json) of ``data`` (``caveat report``; default: the test
        split, or validation when the run has none); returns its path (default ``RUN/report.html``)."""
        report = build_report(self.run, data, ood=list(ood), top=top, batch_size=self.batch_size)
        return write_report(report, out if out is not None else self.path / "report.html")

    def export(self, out: str | Path, *, format: str = "onnx", quantize: str | None = None) -> Model:
        """Export the model to ONNX as the new run directory ``out`` (``caveat export``; ``quantize="int8"``: dynamic
        int8 weights) and return it as a ``Model``: same labels, config and data, served by ONNX Runtime, and not
        calibrated (call ``.calibrate()`` on it; see ``caveat.training.export.export_run``)."""
        export_run(self.run, out, format=format, quantize=quantize)
        return load(out, batch_size=self.batch_size)


def load(run: str | Path | Model, *, batch_size: int | None = None) -> Model:
    """Open any run directory (trained, calibrated or not; an ensemble; NER) as a ``Model``."""
    if isinstance(run, Model):
        return run
    return Model(open_run(run), batch_size=batch_size)


def train(
    config: str | Path | RunConfig,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: bool = False,
    ensemble: int = 1,
    progress: bool = True,
) -> Model:
    """Fine-tune as ``config`` says, write the run directory ``out`` and score validation and test, as
    ``caveat train`` does (``ensemble = N``: a deep ensemble); returns the run as a ``Model``. ``progress=False``
    hides the training bar, which shows only once ``caveat.progress.enable()`` is called (the library is quiet)."""
    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    if ensemble > 1:
        train_ensemble(cfg, out, ensemble, progress=progress)
    else:
        run_training(cfg, out, resume=resume, progress=progress)
    return load(out)


def import_checkpoint(
    folder: str | Path,
    out: str | Path,
    *,
    train: str | None = None,
    validation: str | None = None,
    calibration: str | None = None,
    test: str | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
    labels: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    force: bool = False,
) -> Model:
    """Make the run directory ``out`` from a Hugging Face classification checkpoint fine-tuned elsewhere (a folder
    written by ``save_pretrained``, safetensors, with its tokenizer), as ``caveat import`` does; returns it as a
    ``Model``. The data files fill the run's ``data`` keys for ``calibrate`` and ``evaluate``; see
    ``caveat.training.importing.run_import``. The summary is kept under ``imported`` in its caveat.json."""
    run_import(
        folder,
        out,
        train=train,
        validation=validation,
        calibration=calibration,
        test=test,
        text_field=text_field,
        label_field=label_field,
        labels=labels,
        overrides=overrides,
        force=force,
    )
    return load(out)


def predict(
    run: str | Path | Model,
    inputs: Sequence[str] | Sequence[Sequence[str]],
    *,
    batch_size: int | None = None,
    **options,
) -> Results:
    """``caveat.load(run, batch_size=batch_size).predict(inputs, **options)``."""
    return load(run, batch_size=batch_size).predict(inputs, **options)


def evaluate(run: str | Path | Model, data: str = "test", **options) -> dict:
    """``caveat.load(run).evaluate(data, **options)``."""
    return load(run).evaluate(data, **options)


def attack(run: str | Path | Model, data: str = "test", attacks: str | Sequence[str] = "greedy", **options) -> dict:
    """``caveat.load(run).attack(data, attacks, **options)``."""
    return load(run).attack(data, attacks, **options)


def compare(
    runs: Sequence[str | Path | Model],
    data: str = "test",
    *,
    attacks: str | Sequence[str] | None = None,
    shift: Sequence[str] | dict[str, str] = (),
    adversarial: Sequence[str] | dict[str, str] = (),
    held_out_attacks: bool = False,
    out: str | Path | None = None,
    baseline: str | None = None,
    similarity_model: str = "default",
    **settings,
) -> dict:
    """Runs of one task side by side (``caveat compare``): clean, after each attack, on each shifted and
    adversarial set, cost; ``held_out_attacks``: each run's gain on the attacks its training did not draw from.
    ``settings``: the attacks' (``caveat.robustness.compare.AttackSettings``: ``max_examples``, ``max_change``,
    ``min_similarity``, ``max_candidates``, ``seed``, ``lexicons``); ``similarity_model``: their sentence encoder.
    With ``out``, also writes compare.json, compare.md and the page report.html there."""
    paths = [r.path if isinstance(r, Model) else r for r in runs]
    result = compare_runs(
        paths,
        data,
        attacks=attacks,
        shift=shift,
        adversarial=adversarial,
        held_out_attacks=held_out_attacks,
        settings=AttackSettings(**settings),
        baseline=baseline,
        similarity_model=similarity_model,
    )
    if out is not None:
        write_compare(result, out)
    return result


def tune(
    config: str | Path | RunConfig,
    out: str | Path,
    key: str = "train.alpha",
    values: Sequence = (0.1, 0.3, 1.0, 3.0),
    *,
    overrides: Sequence[str] = (),
    criterion: str = "validation",
    **options,
) -> dict:
    """Train one run per value of config ``key``, keep the best on validation in ``out`` (``caveat tune``):
    ``criterion`` ``"validation"`` or ``"attack:NAME"``; ``options``: ``caveat.training.select.sweep``'s
    (``clean_tolerance``, ``attack_settings``, ``progress``)."""
    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    return sweep(cfg, out, key, list(values), criterion=criterion, **options)
