"""Distribution shift: a run's figures on named, labelled shifted sets next to its in-domain split.

``caveat evaluate RUN --data test --shift cr=custrev.all`` adds ``shift.<name>`` to the evaluate
result (and so to ``RUN/metrics.json``; keys in docs/metrics.md). Each entry holds the same task,
calibration and selective-prediction figures ``evaluate`` computes in-domain (``metrics_for`` and
``uncertainty_metrics``, the very functions), their ``delta`` to the in-domain split, and how far the
shifted inputs' uncertainty scores move: ``ood.<score>`` gives the AUROC of telling the shifted inputs
from the in-domain ones by that score, and the scores' mean and quantiles on both sides.
``reliability`` holds the bins of the shifted set's reliability diagram, raw and (calibrated runs)
after the run's temperature, so the report can draw it without the shifted file.
Scores follow the package convention: higher = more uncertain.

Human-made adversarial sets (``caveat evaluate RUN --adversarial NAME=FILE``: labelled texts written to fool
models, e.g. Adversarial NLI, Nie et al. 2020, or the contrast sets of Gardner et al. 2020) are read and scored by
the same functions, under their own section ``adversarial.<name>``: an adversarial set is a shifted set whose
shift was chosen by an adversary. Every function here takes the section's name as ``field`` so that messages name
the option given (``{shift}`` or ``{adversarial}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from caveat.data.load import format_for, read_file
from caveat.errors import ConfigError, DataError
from caveat.evaluation import calibration as cm
from caveat.evaluation.metrics import metrics_for
from caveat.evaluation.uncertainty import uncertainty_metrics
from caveat.models.rundir import Run
from caveat.progress import subject
from caveat.types import Predictions, Split, Task
from caveat.uncertainty.scores import SCORES

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DELTA_KEYS = ("accuracy", "macro_f1", "nll", "ece", "aurc")
_KIND = {"shift": "shifted"}  # the option's sets, in messages ("adversarial" sets are called that)
N_BINS = 15  # calibration.ece's default: the reliability bins are the ones the saved ECE sums over


def parse_shifts(specs: Sequence[str] | Mapping[str, str], *, field: str = "shift") -> dict[str, str]:
    """``["cr=path", ...]`` (or ``{name: path}``) -> ``{name: path}``, in order; names unique, files present.
    ``field``: the option the sets were given as (``shift`` or ``adversarial``), for the messages."""
    if isinstance(specs, Mapping):
        pairs = [(str(k), str(v)) for k, v in specs.items()]
    else:
        if isinstance(specs, str):
            specs = [specs]
        pairs = []
        for spec in specs:
            name, sep, path = str(spec).partition("=")
            if not sep or not name.strip() or not path.strip():
                raise ConfigError(
                    f"{{{field}}} {spec!r} is not NAME=FILE; write e.g. cr=../shared/data/cr/custrev.all",
                    fields=(field,),
                )
            pairs.append((name.strip(), path.strip()))
    out: dict[str, str] = {}
    for name, path in pairs:
        if name in out:
            raise ConfigError(
                f"{{{field}}} name {name!r} is given twice; give each {_KIND.get(field, field)} set its own name",
                fields=(field,),
            )
        if not Path(path.partition("#")[0]).expanduser().is_file():
            raise ConfigError(
                f"{{{field}}} {name}={path}: no such file; give a labelled file (any format the run reads)",
                fields=(field,),
            )
        out[name] = path
    return out


def read_shift(run: Run, name: str, path: str, *, field: str = "shift") -> Split:
    """The labelled shifted set at ``path``, read with the run's reader settings; its labels must be the run's.

    Files ending in .jsonl/.json/.csv/.tsv are read by their extension, any other with the run's
    ``data.format``. Invalid records (e.g. CR's four label-only lines) are skipped with a warning and
    counted in ``Split.skipped``: the file is someone else's data, not the run's. Raises DataError
    naming every unknown label and the fix.
    """

    fmt = format_for(path, run.config.data.format)  # the rule of caveat evaluate --data FILE
    settings = run.config.data.model_copy(update={"root": None, "format": fmt, "skip_invalid": True})
    split = read_file(path, settings, run.task, name=name)
    if not split.examples:
        raise DataError(
            f"{{{field}}} {name}={path} holds no examples; give a labelled file with at least one", fields=(field,)
        )
    unknown: dict[str, int] = {}
    for ex in split.examples:
        if ex.label not in run.labels:
            unknown[str(ex.label)] = unknown.get(str(ex.label), 0) + 1
    if unknown:
        shown = ", ".join(f"{lab!r} ({n}x)" for lab, n in sorted(unknown.items())[:10])
        raise DataError(
            f"{{{field}}} {name}={path}: labels {shown} are not labels of this run, which predicts "
            f"{', '.join(map(repr, run.labels[:10]))}{' ...' if len(run.labels) > 10 else ''}. Fix: relabel the file "
            "so that every label is one of the run's (the same names, e.g. '1'/'0' rather than 'positive'/'negative'), "
            "or drop the examples of labels the run does not know",
            fields=(field,),
        )
    return split


def read_shifts(run: Run, specs: Sequence[str] | Mapping[str, str], *, field: str = "shift") -> dict[str, Split]:
    """Every shifted (or, ``field="adversarial"``, adversarial) set of ``specs`` (see ``parse_shifts``), read and
    checked before any model pass."""
    if specs and run.task is not Task.TEXT_CLASSIFICATION:
        raise ConfigError(
            f"{{{field}}} is for text-classification runs; {run.path} is a {run.task.value} run: drop {{{field}}}",
            fields=(field,),
        )
    return {name: read_shift(run, name, path, field=field) for name, path in parse_shifts(specs, field=field).items()}


def summary(x: np.ndarray) -> dict:
    """``mean`` and the quantiles ``q05`` ... ``q95`` of scores ``x`` (N,)."""
    qs = np.quantile(x, QUANTILES)
    return {"mean": float(np.mean(x)), **{f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, qs)}}


def reliability(probs: np.ndarray, y: np.ndarray) -> dict:
    """The reliability diagram of top-1 confidence in ``N_BINS`` equal-width, right-closed bins: the very
    bins ``calibration.ece`` sums over, so ``sum(count * |accuracy - confidence|) / N`` is the ECE.

    Parameters
    ----------
    probs : (N, C) probabilities; y : (N,) integer class ids.

    Returns
    -------
    ``{"confidence": [...], "accuracy": [...], "count": [...]}``: one entry per non-empty bin, lowest
    confidence first (empty bins are left out); the counts sum to N.
    """
    bins = cm._bins(probs, y, N_BINS, False)  # (count, accuracy, mean confidence) of each non-empty bin
    return {
        "confidence": [f for _, _, f in bins],
        "accuracy": [a for _, a, _ in bins],
        "count": [c for c, _, _ in bins],
    }


def scores(preds: Predictions, caveats=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Probabilities (N, C) and uncertainty scores (N,) of one pass: the run's calibrated ones (the
    temperature-scaled model's probabilities; least_confidence, entropy, energy of it, and Mahalanobis) when
    calibrated, else the raw model's probabilities and its least_confidence, entropy, energy."""

    if caveats is not None:
        return caveats.scores(preds)
    raw = {k: SCORES.get(k)(probs=preds.probs, logits=preds.logits) for k in ("least_confidence", "entropy", "energy")}
    return preds.probs[0], raw


def shift_metrics(
    base: Predictions, base_split: Split, shifted: Predictions, split: Split, labels: list[str], caveats=None
) -> dict:
    """Figures of ``shifted`` (predictions of the labelled ``split``) against the in-domain ``base``.

    Parameters
    ----------
    base : predictions of the labelled in-domain ``base_split``, logits and probs (1, N, C).
    shifted : predictions of the shifted ``split``, (1, S, C). The splits' labels are the truth.
    labels : the run's labels (class id order). caveats : the run's ``Calibration`` or None.

    Returns
    -------
    The keys of ``shift.<name>`` in docs/metrics.md: the in-domain figures' keys, ``source``, ``skipped``,
    ``delta``, ``ood`` and ``reliability`` (``n_bins``, ``raw`` and, calibrated, ``calibrated``).
    """

    index = {lab: i for i, lab in enumerate(labels)}

    def truth(s: Split) -> np.ndarray:
        return np.array([index[ex.label] for ex in s.examples])  # (N,)

    def figures(preds: Predictions, s: Split) -> dict:
        return {
            **metrics_for(Task.TEXT_CLASSIFICATION, s, labels, logits=preds.logits[0]),
            **uncertainty_metrics(preds, truth(s), caveats),
        }

    inside = figures(base, base_split)
    out = {"source": split.source, "skipped": split.skipped, **figures(shifted, split)}
    out["delta"] = {k: out[k] - inside[k] for k in DELTA_KEYS}  # shifted minus in-domain
    if caveats is not None:
        out["delta"]["calibrated_ece"] = out["calibrated"]["ece"] - inside["calibrated"]["ece"]
    (_, s_in), (probs_out, s_out) = scores(base, caveats), scores(shifted, caveats)
    y_out = truth(split)
    out["reliability"] = {"n_bins": N_BINS, "raw": reliability(shifted.probs[0], y_out)}
    if caveats is not None:
        out["reliability"]["calibrated"] = reliability(probs_out, y_out)
    out["ood"] = {
        k: {
            "auroc": cm.ood_auroc(s_in[k], s_out[k]),
            "fpr95": cm.fpr_at_95_tpr(s_in[k], s_out[k]),
            "in_domain": summary(s_in[k]),
            "shifted": summary(s_out[k]),
        }
        for k in s_in
    }
    return out


def evaluate_shifts(
    run: Run,
    predictor,
    split: Split,
    shifted: Mapping[str, Split],
    *,
    base: Predictions | None = None,
    what: str = "shifted set",
) -> dict:
    """``{name: shift_metrics(...)}`` for each shifted set: one pass per set, and one over ``split``
    unless its predictions ``base`` are given.

    ``predictor`` is the run's ``Predictor``; ``split`` the in-domain split (labelled); ``shifted``
    from ``read_shifts``. Uses the run's calibration when there is one. ``what`` names the sets' kind in the
    progress lines (``"adversarial set"``).
    """
    caveats = predictor.calibration
    if base is None:
        base = predictor.predict([ex.text for ex in split.examples])
    out = {}
    for name, s in shifted.items():
        with subject(f"{what} {name}"):
            preds = predictor.predict([ex.text for ex in s.examples])
        out[name] = shift_metrics(base, split, preds, s, run.labels, caveats)
    return out
