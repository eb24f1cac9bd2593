"""Figures of the report as PNG bytes, drawn from the data in ``caveat.report.schema`` alone.

Headless by construction: every figure is a ``matplotlib.figure.Figure`` on an explicit Agg canvas,
never pyplot, so no GUI backend is touched, the caller's pyplot state is left alone, and no figure
stays registered (nothing to leak in a long-running service). One function per figure kind,
chosen by name through ``PLOTS``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from caveat.registry import Registry
from caveat.report.schema import BarFigure, HistogramFigure, LineFigure, MeansFigure, ReliabilityFigure

DPI = 100
SIZE = (5.4, 3.3)  # inches: 540 x 330 pixels at DPI; two fit side by side on the page
COLORS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a", "#bf3989", "#0a7ea4")

PLOTS: Registry[Callable[[object], bytes]] = Registry("figure kind")


@contextmanager
def _canvas(size: tuple[float, float] = SIZE) -> Iterator[tuple[Figure, io.BytesIO]]:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, set explicitly: rendering needs no display
    buf = io.BytesIO()
    yield fig, buf
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#d0d7de", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(fig: Figure, handles: list, ncols: int = 3) -> None:
    """One legend below the axes, where it can never hide data."""
    if handles:
        fig.legend(
            handles=handles, loc="outside lower center", ncols=min(ncols, len(handles)), fontsize=8, frameon=False
        )


@PLOTS.register("line")
def line_png(figure: LineFigure) -> bytes:
    """Lines on a left (and optional right) axis, with marked points."""
    with _canvas() as (fig, buf):
        ax = fig.add_subplot()
        _style(ax, figure.title, figure.xlabel, figure.ylabel)
        right = ax.twinx() if any(s.axis == "right" for s in figure.series) else None
        if right is not None:
            right.set_ylabel(figure.ylabel_right, fontsize=9)
            right.tick_params(labelsize=8)
            right.spines["top"].set_visible(False)
        handles = []
        for k, s in enumerate(figure.series):
            target = right if s.axis == "right" else ax
            dashed = s.style == "dashed"
            handles += target.plot(
                s.x,
                s.y,
                color=COLORS[k % len(COLORS)],
                linewidth=1.2 if dashed else 1.8,
                label=s.name,
                linestyle="--" if dashed else "-",
                marker="o" if len(s.x) <= 30 and not dashed else None,
                markersize=3.5,
            )
        if all(float(v).is_integer() for s in figure.series for v in s.x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, not 1.25
        for p in figure.points:
            handles += ax.plot(
                [p.x],
                [p.y],
                marker="*",
                markersize=14,
                color="#cf222e",
                markeredgecolor="black",
                linestyle="none",
                label=p.label,
            )
        _legend(fig, handles)
    return buf.getvalue()


@PLOTS.register("histogram")
def histogram_png(figure: HistogramFigure) -> bytes:
    """Each group's share of inputs per bin, as overlaid steps (groups of different sizes compare)."""
    edges = np.asarray(figure.edges)
    with _canvas() as (fig, buf):
        ax = fig.add_subplot()
        _style(ax, figure.title, figure.xlabel, "share of group")
        for k, g in enumerate(figure.groups):
            counts = np.asarray(g.counts, dtype=float)
            share = counts / counts.sum() if counts.sum() else counts
            color = COLORS[k % len(COLORS)]
            ax.stairs(share, edges, fill=True, alpha=0.25, color=color)
            ax.stairs(share, edges, color=color, linewidth=1.5, label=g.name)
        ax.set_xlim(edges[0], edges[-1])
        _legend(fig, ax.get_legend_handles_labels()[0])
    return buf.getvalue()


@PLOTS.register("bar")
def bar_png(figure: BarFigure) -> bytes:
    """Counts per category, groups side by side."""
    x = np.arange(len(figure.categories))
    width = 0.8 / max(1, len(figure.groups))
    with _canvas() as (fig, buf):
        ax = fig.add_subplot()
        _style(ax, figure.title, figure.xlabel, figure.ylabel)
        for k, g in enumerate(figure.groups):
            ax.bar(
                x + (k - (len(figure.groups) - 1) / 2) * width,
                g.counts,
                width,
                color=COLORS[k % len(COLORS)],
                label=g.name,
            )
        ax.set_xticks(x, figure.categories)
        if len(figure.groups) > 1:
            _legend(fig, ax.get_legend_handles_labels()[0])
    return buf.getvalue()


@PLOTS.register("means")
def means_png(figure: MeansFigure) -> bytes:
    """Means per category with ± one standard error, groups side by side; the baseline category hatched."""
    x = np.arange(len(figure.categories))
    width = 0.8 / max(1, len(figure.groups))
    with _canvas() as (fig, buf):
        ax = fig.add_subplot()
        _style(ax, figure.title, figure.xlabel, figure.ylabel)
        for k, g in enumerate(figure.groups):
            means = np.array([np.nan if v is None else v for v in g.means], dtype=float)
            errors = np.array([np.nan if v is None else v for v in g.errors], dtype=float) if g.errors else None
            bars = ax.bar(
                x + (k - (len(figure.groups) - 1) / 2) * width,
                np.nan_to_num(means),
                width,
                yerr=errors,
                color=COLORS[k % len(COLORS)],
                label=g.name,
                capsize=3,
                error_kw={"linewidth": 1},
            )
            for name, bar in zip(figure.categories, bars):
                if name == figure.baseline:
                    bar.set_hatch("///")
                    bar.set_alpha(0.55)
        ax.axhline(0, color="#57606a", linewidth=0.8)
        crowded = sum(len(c) for c in figure.categories) > 60  # e.g. run names: slant them so they cannot overlap
        ax.set_xticks(x, figure.categories, rotation=25 if crowded else 0, ha="right" if crowded else "center")
        if len(figure.groups) > 1:
            _legend(fig, ax.get_legend_handles_labels()[0])
    return buf.getvalue()


@PLOTS.register("reliability")
def reliability_png(figure: ReliabilityFigure) -> bytes:
    """Accuracy against mean confidence per bin, with the diagonal of perfect calibration."""
    with _canvas((4.6, 4.4)) as (fig, buf):
        ax = fig.add_subplot()
        _style(ax, figure.title, "confidence (mean of bin)", "accuracy")
        ax.plot([0, 1], [0, 1], color="#8c959f", linestyle="--", linewidth=1, label="perfect calibration")
        biggest = max((max(c.count) for c in figure.curves if c.count), default=1)
        for k, c in enumerate(figure.curves):
            color = COLORS[k % len(COLORS)]
            ax.plot(c.confidence, c.accuracy, color=color, linewidth=1.4, label=f"{c.name} (ECE {c.ece:.3f})")
            ax.scatter(
                c.confidence,
                c.accuracy,
                s=[15 + 185 * n / biggest for n in c.count],
                color=color,
                alpha=0.7,
                edgecolors="white",
                linewidths=0.5,
            )
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        _legend(fig, ax.get_legend_handles_labels()[0], ncols=2)
    return buf.getvalue()


def render(figure) -> bytes:
    """PNG bytes of any figure of the schema."""
    return PLOTS.get(figure.kind)(figure)
