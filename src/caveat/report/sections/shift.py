"""Distribution shift: the run on each shifted set next to the report's split, as ``caveat evaluate
--shift`` saved it in metrics.json (read, not recomputed: the shifted files are not the report's input)."""

from __future__ import annotations

from caveat.report.context import Context
from caveat.report.schema import ReliabilityCurve, ReliabilityFigure, Section, Table
from caveat.report.sections.base import num, saved_metrics

N_BINS = 15  # robustness.shift.N_BINS: what metrics.json written before it said n_bins used
CURVES = (("raw", "raw model", ("ece",)), ("calibrated", "temperature-scaled", ("calibrated", "ece")))


def _at(d, *keys):
    """``d[k1][k2]...``, or None where a level is missing (metrics.json of an older caveat lacks keys)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _curve(name: str, bins: dict | None, ece: float | None) -> ReliabilityCurve | None:
    """A saved ``reliability.<raw|calibrated>`` as a curve; None when there are no bins."""
    if not bins or not bins.get("count"):
        return None
    count, accuracy, confidence = bins["count"], bins["accuracy"], bins["confidence"]
    if ece is None:  # the saved bins are ece's: the same number, from the saved figures alone
        ece = sum(c * abs(a - f) for c, a, f in zip(count, accuracy, confidence)) / sum(count)
    return ReliabilityCurve(name=name, confidence=confidence, accuracy=accuracy, count=count, ece=ece)


def _reliability(name: str, s: dict) -> ReliabilityFigure | None:
    """Raw vs calibrated reliability diagram of shifted set ``name``; None when ``s`` holds no bins."""
    rel = s.get("reliability") or {}
    curves = [c for which, label, ece in CURVES if (c := _curve(label, rel.get(which), _at(s, *ece))) is not None]
    if not curves:
        return None
    return ReliabilityFigure(
        key=f"reliability_{name}",
        title=f"Reliability on {name}",
        n_bins=rel.get("n_bins", N_BINS),
        curves=curves,
        note=f"The {name} set's confidence bins as `caveat evaluate --shift` saved them: the raw model"
        + (" and after the run's temperature" if len(curves) > 1 else "")
        + ". On the diagonal, confidence equals accuracy; marker area grows with the bin's size.",
    )


def _target_note(info: dict) -> str | None:
    """The note on a calibration for a target domain (``caveat calibrate RUN --target``), or None."""
    target = _at(info, "calibration", "shift")
    if not target:
        return None
    ess = target.get("effective_sample_size")
    return (
        f"Calibrated for the target domain: {target.get('summary', '').strip()} Target texts: "
        f"`{target.get('target') or 'not recorded'}` ({target.get('n_target', '?')}); effective sample size "
        f"{'?' if ess is None else f'{ess:.1f}'}."
    )


def shift(ctx: Context) -> Section | None:
    """Shown when metrics.json holds ``<data>.shift.*``: accuracy, ECE, AURC, prediction-set coverage and the
    abstention policy's realised risk per set, a reliability diagram per shifted set, and how far the
    uncertainty scores move (AUROC of telling shifted from in-domain inputs, means). Keys an older
    metrics.json lacks show as empty cells (or no figure)."""
    saved = saved_metrics(ctx.run).get(ctx.data, {})
    shifts = saved.get("shift") or {}
    if not shifts:
        return None
    figures = {name: _reliability(name, s) for name, s in shifts.items()}
    return Section(
        key="shift",
        title="Distribution shift",
        notes=_notes(ctx, saved, [name for name, f in figures.items() if f is None]),
        figures=[f for f in figures.values() if f is not None],
        tables=[_per_set_table(ctx, saved, shifts), _scores_table(shifts)],
    )


def _per_set_table(ctx: Context, saved: dict, shifts: dict) -> Table:
    """Accuracy, calibration and decisions of the in-domain split and each shifted set; columns only for the
    figures some entry holds."""
    entries = [saved, *shifts.values()]
    calibrated = any("calibrated" in s for s in entries)
    conformal = any("conformal" in s for s in entries)
    abstention = any("abstention" in s for s in entries)
    alpha = _at(ctx.run.info, "calibration", "conformal", "alpha")
    coverage = f"set coverage (target {1 - alpha:.3g})" if alpha else "set coverage"
    columns = [
        "set",
        "examples",
        "accuracy",
        "macro F1",
        "ECE",
        *(["ECE (calibrated)"] if calibrated else []),
        "AURC",
        "Δ accuracy",
        *([coverage, "mean set size"] if conformal else []),
        *(["abstention risk", "answered", "guarantee"] if abstention else []),
    ]

    def row(name: str, m: dict, delta) -> list:
        return [
            name,
            m.get("n"),
            m.get("accuracy"),
            m.get("macro_f1"),
            m.get("ece"),
            *([_at(m, "calibrated", "ece")] if calibrated else []),
            m.get("aurc"),
            delta,
            *([_at(m, "conformal", "coverage"), _at(m, "conformal", "set_size")] if conformal else []),
            *([_at(m, "abstention", k) for k in ("risk", "coverage", "guarantee")] if abstention else []),
        ]

    rows = [row(f"{ctx.data} (in-domain)", saved, None)]
    rows += [
        row(f"{name} ({s['source']})" if s.get("source") else name, s, _at(s, "delta", "accuracy"))
        for name, s in shifts.items()
    ]
    return Table(
        key="shift",
        title="Accuracy, calibration and decisions per set",
        columns=columns,
        rows=[[num(c) for c in r] for r in rows],
        note=(
            "Set coverage: the share of inputs whose prediction set holds the true label (the target is promised "
            "on data like the calibration split; a shift can break it). Abstention risk: the error rate of the "
            "answered inputs, answered: their share; the guarantee is the one the policy was calibrated for."
            if conformal or abstention
            else ""
        ),
    )


def _scores_table(shifts: dict) -> Table:
    """How far each uncertainty score moves on each shifted set."""
    rows = [
        [
            name,
            score,
            o.get("auroc"),
            o.get("fpr95"),
            _at(o, "in_domain", "mean"),
            _at(o, "shifted", "mean"),
            _at(o, "in_domain", "q50"),
            _at(o, "shifted", "q50"),
        ]
        for name, s in shifts.items()
        for score, o in (s.get("ood") or {}).items()
    ]
    return Table(
        key="shift_scores",
        title="Uncertainty scores, shifted vs in-domain",
        columns=[
            "set",
            "score",
            "AUROC",
            "FPR@95",
            "mean (in-domain)",
            "mean (shifted)",
            "median (in-domain)",
            "median (shifted)",
        ],
        rows=[[num(c) for c in r] for r in rows],
        note="AUROC: the chance that a shifted input scores higher (more uncertain) than an in-domain one; "
        "0.5: the score does not see the shift.",
    )


def _notes(ctx: Context, saved: dict, without_diagram: list[str]) -> list[str]:
    """Where the figures come from, the target calibration if any, sets saved without a diagram, a stale run."""
    notes = [
        f"From `{ctx.run.path}/metrics.json`, as `caveat evaluate {ctx.run.path} --data {ctx.data} --shift NAME=FILE` "
        "wrote it; run that again to update these figures. Δ accuracy: shifted minus in-domain. ECE is of the raw "
        "model unless marked calibrated."
    ]
    if (target := _target_note(ctx.run.info)) is not None:
        notes.append(target)
    if without_diagram:
        notes.append(
            f"No reliability diagram for {', '.join(without_diagram)}: metrics.json was written before `caveat "
            "evaluate --shift` saved one; evaluate again to add it."
        )
    now = ctx.metrics.get("accuracy")
    if saved.get("accuracy") is not None and now is not None and abs(saved["accuracy"] - now) > 1e-9:
        notes.append(
            f"The saved in-domain accuracy ({saved['accuracy']:.4f}) differs from this report's "
            f"({now:.4f}): the run changed since; evaluate it again."
        )
    return notes
