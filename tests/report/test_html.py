"""The HTML page: self-contained, valid embedded PNGs, user text escaped, data in report.json."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from caveat.report import Report, render_html

IMG = re.compile(r'<img src="([^"]*)" width="(\d+)" height="(\d+)"')
DATA_URI = "data:image/png;base64,"


@pytest.fixture(scope="module")
def pages(calibrated_report, uncalibrated_report, ner_reports) -> list[tuple[Report, str]]:
    ner = (ner_reports[1], ner_reports[2])
    return [
        (report, html.read_text(encoding="utf-8")) for report, html in (calibrated_report, uncalibrated_report, ner)
    ]


def test_pages_reference_nothing_outside_themselves(pages):
    for _, html in pages:
        assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:' in html
        for attr, value in re.findall(r'\b(src|href|srcset|action|poster|data)\s*=\s*"([^"]*)"', html):
            assert (attr == "src" and value.startswith(DATA_URI)) or (attr == "href" and value.startswith("#")), (
                attr,
                value[:80],
            )
        lowered = html.lower()
        for needle in ("http://", "https://", "<script", "<link", "<iframe", "<object", "<embed", "@import", "url("):
            assert needle not in lowered, needle


def test_every_figure_is_a_valid_png_of_modest_size(pages):
    for report, html in pages:
        images = IMG.findall(html)
        assert len(images) == sum(len(s.figures) for s in report.sections) > 0
        for uri, width, height in images:
            data = base64.b64decode(uri.removeprefix(DATA_URI), validate=True)
            image = Image.open(io.BytesIO(data))
            image.verify()  # checks the chunks and their CRCs
            assert image.format == "PNG" and image.size == (int(width), int(height))
            assert 200 <= image.size[0] <= 800 and 200 <= image.size[1] <= 600 and len(data) < 200_000


def test_user_text_is_escaped(calibrated_report):
    report, path = calibrated_report
    html = path.read_text(encoding="utf-8")
    texts = [row["text"] for row in report.section("weak_spots").table("uncertain").records()]
    assert any(t.startswith("<script>alert(") for t in texts), "a planted text should be among the most uncertain"
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html
    assert render_html(report) == html  # the page is a function of the Report alone


def test_report_json_round_trips(calibrated_report):
    report, path = calibrated_report
    again = Report.model_validate_json(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert again == report and again.schema_version == 1
    assert not list(path.parent.glob(".report.*"))  # no temporary file left behind


def test_cells_read_well():
    from caveat.report.html import format_cell

    assert [format_cell(v) for v in (None, True, 7, 0.123456, 2e-5, 0.99999, 1.0)] == [
        "–",
        "yes",
        "7",
        "0.1235",
        "2.00e-05",
        "1 − 1.0e-05",
        "1",
    ]
