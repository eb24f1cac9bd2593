"""The report as data: every number, table and plotted series the page shows.

``Report`` is the one contract of ``caveat report``: ``report.json`` is ``Report.model_dump_json()``,
``report.html`` is rendered from it alone (figures are drawn from the series stored here), and other
tools read the JSON instead of parsing HTML. Sections are generic (metrics, tables, figures, notes),
so a new section needs no new schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Cell = str | int | float | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Model):
    """One headline number (or short value) with a human label."""

    key: str = Field(description="Stable key, e.g. 'accuracy' or 'conformal.coverage'.")
    label: str = Field(description="What the page shows next to the value.")
    value: Cell
    help: str = Field("", description="One sentence on how to read it.")


class Table(_Model):
    """A table: ``rows`` are lists of cells in the order of ``columns``."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""

    def records(self) -> list[dict[str, Cell]]:
        """Rows as ``{column: cell}`` dicts."""
        return [dict(zip(self.columns, row)) for row in self.rows]


class Series(_Model):
    """One line of a line figure."""

    name: str
    x: list[float]
    y: list[float]
    axis: Literal["left", "right"] = "left"
    style: Literal["solid", "dashed"] = Field("solid", description="dashed: a reference level, e.g. a target.")


class Point(_Model):
    """A marked point (e.g. the operating point on a risk-coverage curve)."""

    label: str
    x: float
    y: float


class LineFigure(_Model):
    kind: Literal["line"] = "line"
    key: str
    title: str
    xlabel: str
    ylabel: str
    ylabel_right: str = ""
    series: list[Series]
    points: list[Point] = Field(default_factory=list)
    note: str = ""


class Group(_Model):
    """Counts of one group (e.g. correct predictions) over the bins of a histogram or bar figure."""

    name: str
    counts: list[int]


class HistogramFigure(_Model):
    """Histograms of groups over shared bin ``edges`` (len(counts) == len(edges) - 1); drawn as each
    group's share per bin, so groups of different sizes compare."""

    kind: Literal["histogram"] = "histogram"
    key: str
    title: str
    xlabel: str
    edges: list[float]
    groups: list[Group]
    note: str = ""


class BarFigure(_Model):
    """Counts per category (e.g. prediction-set size) for one or more groups."""

    kind: Literal["bar"] = "bar"
    key: str
    title: str
    xlabel: str
    ylabel: str
    categories: list[str]
    groups: list[Group]
    note: str = ""


class ReliabilityCurve(_Model):
    """Non-empty equal-width confidence bins: mean confidence, accuracy and count of each."""

    name: str
    confidence: list[float]
    accuracy: list[float]
    count: list[int]
    ece: float


class ReliabilityFigure(_Model):
    kind: Literal["reliability"] = "reliability"
    key: str
    title: str
    n_bins: int
    curves: list[ReliabilityCurve]
    note: str = ""


class MeanGroup(_Model):
    """One group of a means figure: a mean and its standard error per category (None: no value)."""

    name: str
    means: list[float | None]
    errors: list[float | None] = Field(default_factory=list, description="Standard errors (whiskers); empty: none.")


class MeansFigure(_Model):
    """Means with error bars per category (e.g. a figure per explanation method), groups side by side."""

    kind: Literal["means"] = "means"
    key: str
    title: str
    xlabel: str
    ylabel: str
    categories: list[str]
    groups: list[MeanGroup]
    baseline: str | None = Field(None, description="A category drawn hatched: the level the others must beat.")
    note: str = ""


Figure = Annotated[
    LineFigure | HistogramFigure | BarFigure | ReliabilityFigure | MeansFigure, Field(discriminator="kind")
]


class Explanation(_Model):
    """One explained input, drawn as its words shaded red (they raise the explained quantity) or blue
    (they lower it); the page renders it with ``caveat.explain.render.to_html``."""

    method: str
    text: str
    attribution: dict = Field(
        description="``caveat.explain.Attribution.to_dict()``: method, target, value, "
        "words [{word, attribution, feature}], evaluations, seconds, details."
    )


class Section(_Model):
    """One part of the page. ``key`` is stable (tests and tools look sections up by it)."""

    key: str
    title: str
    notes: list[str] = Field(default_factory=list, description="Paragraphs; `code` in backticks.")
    metrics: list[Metric] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    explanations: list[Explanation] = Field(
        default_factory=list, description="Explained inputs, shown after the tables."
    )

    def metric(self, key: str) -> Cell:
        """The value of metric ``key``; KeyError names the keys there are."""
        for m in self.metrics:
            if m.key == key:
                return m.value
        raise KeyError(f"section {self.key!r} has no metric {key!r}; it has: {', '.join(m.key for m in self.metrics)}")

    def table(self, key: str) -> Table:
        """Table ``key``; KeyError names the tables there are."""
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(f"section {self.key!r} has no table {key!r}; it has: {', '.join(t.key for t in self.tables)}")

    def figure(self, key: str):
        """Figure ``key``; KeyError names the figures there are."""
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(f"section {self.key!r} has no figure {key!r}; it has: {', '.join(f.key for f in self.figures)}")


class Report(_Model):
    """A run evaluated on one split (or runs compared on one, ``runs``): what the page shows, as data."""

    schema_version: int = SCHEMA_VERSION
    title: str
    run: str = Field(description="The run directory (a comparison: the compared ones, comma-separated).")
    runs: list[str] = Field(
        default_factory=list, description="The compared run directories (caveat compare); empty for one run's report."
    )
    task: str
    data: str = Field(description="The split name or file the report evaluates.")
    source: str = Field(description="Where that split's examples came from.")
    n: int = Field(description="Examples in the evaluated split.")
    calibrated: bool
    ood: list[str] = Field(default_factory=list, description="Out-of-scope sets, as given to --ood.")
    created: str
    versions: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="What is missing and how to add it.")
    sections: list[Section]

    def section(self, key: str) -> Section:
        """Section ``key``; KeyError names the sections there are."""
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"the report has no section {key!r}; it has: {', '.join(s.key for s in self.sections)}")

    @property
    def section_keys(self) -> list[str]:
        return [s.key for s in self.sections]
