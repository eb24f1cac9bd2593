"""``caveat report``: a self-contained HTML page (and its data as JSON) about one run on one split.

``build_report(run, data, ood) -> Report`` computes; ``render_html(report) -> str`` draws;
``write_report(report, out)`` writes ``report.html`` and ``report.json`` atomically.
"""

from caveat.report.build import build_report
from caveat.report.html import render_html, write_report
from caveat.report.schema import Report

__all__ = ["Report", "build_report", "render_html", "write_report"]
