"""``calibrate_run``: the calibration workflow of any run, text or NER (``caveat calibrate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from caveat.calibration.fit_spans import calibrate_spans
from caveat.calibration.fit_text import calibrate_text
from caveat.data.resolve import target_inputs as read_target
from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
from caveat.types import Task
from caveat.uncertainty.scores import resolve_score_name


def calibrate_run(
    run_dir: str | Path | Run,
    *,
    alpha: float = 0.1,
    conformal: str = "lac",
    score: str = "least_confidence",
    target_risk: float = 0.02,
    delta: float = 0.05,
    ood_tpr: float = 0.95,
    ood: Sequence[str] = (),
    ood_rate: float | None = None,
    target: Sequence[str] = (),
    target_texts: Sequence[str] = (),
    batch_size: int | None = None,
) -> dict:
    """Fit every calibrated quantity on the calibration split (never on test) and save it with the run.

    Text classification (``fit_text.py``):

    - temperature scaling (Guo et al. 2017) by NLL;
    - split-conformal sets at level ``1 - alpha`` on the temperature-scaled probabilities;
    - Mahalanobis distance (Lee et al. 2018) fitted on train features, thresholded to keep
      ``ood_tpr`` of in-scope *validation* inputs (so it is fixed before the risk threshold is chosen);
    - a Learn-then-Test abstention threshold on ``score`` (``least_confidence``, ``entropy`` or ``energy``;
      the old name ``"msp"`` is taken as ``"least_confidence"`` with a ``DeprecationWarning``) so that the
      error rate of answered inputs is <= ``target_risk`` with probability >= ``1 - delta`` (abstains on
      all when infeasible). The answered set it controls is the whole policy's: inputs that the OOD or
      prediction-set checks stop are never answered. With ``ood`` (out-of-scope sets: names from the
      run's ``data.ood`` or files of texts), the bound covers deployment traffic with a share
      ``ood_rate`` of out-of-scope inputs, every answer to them counted as an error (default share:
      theirs in the calibration data).
    - with ``target`` (files of unlabelled texts from the domain the run will serve: plain lines, a
      .jsonl/.csv with the run's text field, or logs of ``caveat serve --log-inputs``), all of the above is
      fitted for that domain by importance weights of the calibration examples (``shift.py``), and the
      summary's ``shift`` says what was done, how much data it is worth, and under which assumption.
      ``target_texts`` gives such texts directly (both may be given).

    Token classification (``fit_spans.py``): a word temperature and a keep/flag threshold on span
    confidence so that the share of wrong kept spans is <= ``target_risk``; with ``target`` (sentences of the
    new domain, or ``target_texts`` split on whitespace), the threshold is chosen for that domain's spans.

    Returns a summary (also stored under ``calibration`` in caveat.json).
    """
    score = resolve_score_name(score)  # "msp" -> "least_confidence", warning the caller once
    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    if run.task is Task.TOKEN_CLASSIFICATION:
        if ood or ood_rate is not None:
            raise ConfigError(
                "{ood} / {ood_rate} are for text-classification runs; a NER run flags low-confidence spans instead",
                fields=("ood", "ood_rate"),
            )
        sentences = [t for spec in target for t in read_target(run, spec)]
        sentences += [t.split() if isinstance(t, str) else list(t) for t in target_texts]
        return calibrate_spans(
            run,
            target_risk=target_risk,
            delta=delta,
            target=sentences,
            target_source=_source(target, target_texts),
            batch_size=batch_size,
        )
    return calibrate_text(
        run,
        alpha=alpha,
        conformal=conformal,
        score=score,
        target_risk=target_risk,
        delta=delta,
        ood_tpr=ood_tpr,
        ood=ood,
        ood_rate=ood_rate,
        target=[t for spec in target for t in read_target(run, spec)] + list(target_texts),
        target_source=_source(target, target_texts),
        batch_size=batch_size,
    )


def _source(files: Sequence[str], texts: Sequence) -> str | None:
    """Where the target inputs came from, for the summary."""
    return ", ".join([*files, *(["(texts)"] if texts else [])]) or None
