"""Build a :class:`Report`: predict once on the split (and once on each out-of-scope set), then let
each section read the shared arrays.

The expensive pass (the model) runs here only; sections are functions of a :class:`Context` and
return a ``Section`` or None when the run lacks what they show (see ``caveat.report.sections``).
"""

from __future__ import annotations

import time
from pathlib import Path

from caveat._version import __version__
from caveat.data.resolve import default_split
from caveat.errors import ConfigError
from caveat.models.rundir import Run, open_run
from caveat.report.context import prepare
from caveat.report.schema import Report
from caveat.report.sections import SECTIONS
from caveat.types import Task


def build_report(
    run: str | Path | Run,
    data: str | None = None,
    ood: tuple[str, ...] | list[str] = (),
    *,
    top: int = 10,
    batch_size: int | None = None,
) -> Report:
    """The report of a run on ``data`` (a split name or a labelled file).

    Parameters
    ----------
    run : run directory (or an opened ``Run``).
    data : split name (train, validation, calibration, test) or a labelled file; None: the test split, or the
        validation split when the run has no test split (a note says so).
    ood : out-of-scope sets: names from the run's ``data.ood`` or files of texts (text runs only).
    top : rows in the per-example tables (most uncertain inputs, confident mistakes, ...).
    batch_size : inference batch size (default: the run's ``eval_batch_size``).

    Uses the run's calibration (``caveat calibrate``) when there is one; sections it needs are left
    out otherwise, and ``Report.notes`` says how to add them.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be an integer >= 1 (rows per example table). Got {top!r}.")
    run = run if isinstance(run, Run) else open_run(run)
    chosen = data is None
    data = default_split(run) if data is None else data
    ctx = prepare(run, data, tuple(ood), top=top, batch_size=batch_size)
    sections = [s for make in SECTIONS if (s := make(ctx)) is not None]
    notes = []
    if chosen and data != "test":
        notes.append(
            f"This run has no test split, so this report is on the {data} split, which chose the training "
            f"checkpoint: its figures are optimistic. Report on held-out data with "
            f"`caveat report {run.path} --data FILE`."
        )
    if run.task is Task.TEXT_CLASSIFICATION and not ctx.calibrated:
        notes.append(
            f"This run is not calibrated, so the calibrated reliability curve, the abstention operating point, "
            f"conformal prediction sets and decisions are missing. Add them with `caveat calibrate {run.path}` "
            f"and build the report again."
        )
    if run.task is Task.TEXT_CLASSIFICATION and not ood:
        notes.append(
            f"No out-of-scope data was given. Add out-of-scope detection with "
            f"`caveat report {run.path} --ood FILE_OF_TEXTS` (or a data.ood name of the run)."
        )
    if run.task is Task.TOKEN_CLASSIFICATION and not ctx.calibrated:
        notes.append(
            f"This run is not calibrated, so span confidences are raw and there is no keep/flag threshold. "
            f"Add them with `caveat calibrate {run.path}` and build the report again."
        )
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
