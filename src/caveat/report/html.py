"""Render a :class:`Report` as one self-contained HTML page and write it with its JSON.

Autoescaping is on: example texts, labels and paths are user data and reach the page only as text.
Figures are embedded as base64 PNG ``data:`` URIs; the page references nothing outside itself.
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from caveat.explain.render import from_dict, to_html
from caveat.io import write_text_atomic
from caveat.report.plots import render
from caveat.report.schema import Report
from caveat.report.template import TEMPLATE

_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Png:
    """An embedded image: its data URI and pixel size (so the page reserves the space)."""

    uri: str
    width: int
    height: int


def png_image(data: bytes) -> Png:
    """Wrap PNG bytes as a data URI; the size comes from the IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG: the figure renderer must return PNG bytes")
    width, height = struct.unpack(">II", data[16:24])
    return Png(uri="data:image/png;base64," + base64.b64encode(data).decode("ascii"), width=width, height=height)


def format_cell(value) -> str:
    """How a cell or metric value reads on the page."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if 0 < 1 - value < 5e-5:  # would print as 1; confidences this close to 1 still differ
            return f"1 − {1 - value:.1e}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _kind(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "num"
    return "text"


def _code(text: str) -> Markup:
    """Escape ``text``, then show `backticked` parts as code (escaping first keeps user data inert)."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


def _attribution(d: dict) -> Markup:
    """An ``Attribution.to_dict()`` as escaped HTML: its words shaded by ``caveat.explain.render``."""

    return to_html(from_dict(d))


def _environment():
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters.update(
        fmt=format_cell, kind=_kind, code=_code, attribution=_attribution, png=lambda figure: png_image(render(figure))
    )
    return env


def render_html(report: Report) -> str:
    """The page as one string: inline CSS, figures as data URIs, no scripts, no external references."""

    return _environment().from_string(TEMPLATE).render(report=report)


def write_report(report: Report, out: str | Path) -> Path:
    """Write ``out`` (HTML) and the same name with ``.json`` (the Report), each atomically; returns ``out``."""
    out = Path(out)
    html = render_html(report)  # render first: a failing figure leaves the old files in place
    write_text_atomic(out.with_suffix(".json"), report.model_dump_json(indent=2) + "\n")
    write_text_atomic(out, html)
    return out
