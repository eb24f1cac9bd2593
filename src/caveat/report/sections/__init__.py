"""The sections of the report, in page order.

A section is a function ``(Context) -> Section | None`` that returns None when the run lacks what it
shows (e.g. conformal sets of an uncalibrated run). Adding one (attacks, shift, explanations): write
the function in a module here, using the generic figure kinds of ``caveat.report.schema``, and put
it in ``SECTIONS`` where it belongs on the page; the HTML needs no change.
"""

from __future__ import annotations

from collections.abc import Callable

from caveat.report.context import Context
from caveat.report.schema import Section
from caveat.report.sections import (
    attacks,
    calibration,
    decisions,
    explanations,
    export,
    ner,
    ood,
    overview,
    performance,
    relations,
    shift,
    weak_spots,
)

SectionFn = Callable[[Context], "Section | None"]

SECTIONS: tuple[SectionFn, ...] = (
    overview.data_and_training,
    export.exported,
    performance.performance,
    ner.span_confidence,
    relations.relations,
    calibration.reliability,
    calibration.confidence,
    decisions.risk_coverage,
    decisions.conformal_sets,
    decisions.decisions,
    ood.out_of_scope,
    shift.shift,
    attacks.attacks,
    explanations.explanations,
    weak_spots.weak_spots,
    ner.weak_spans,
)
