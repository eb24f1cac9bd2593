"""The report in a real browser: it loads, every image decodes, the console stays clean."""

from __future__ import annotations

import pytest

from tests.report.chromium import CHROMIUM, Chromium

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` (.ci/run does this on CI)",
)


@pytest.fixture(scope="module")
def browser():
    with Chromium() as chromium:
        yield chromium


def test_reports_load_with_every_image_decoded_and_no_console_error(
    browser, calibrated_report, uncalibrated_report, ner_reports, explained_report
):
    # explained_report: its example snippets carry inline styles, which the page's CSP must allow
    for report, html in (calibrated_report, uncalibrated_report, (ner_reports[1], ner_reports[2]), explained_report):
        page = browser.load(html.as_uri())
        assert page.errors == [], html
        assert page.title == report.title
        assert len(page.images) == sum(len(s.figures) for s in report.sections) > 0
        assert all(image["complete"] and image["width"] > 0 and image["height"] > 0 for image in page.images), (
            page.images
        )


def test_the_check_catches_broken_pages(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><title>bad</title><img src="data:image/png;base64,AAAA">'
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("planted")</script>',
        encoding="utf-8",
    )
    page = browser.load(bad.as_uri())
    assert [image["width"] for image in page.images] == [0, 0]
    assert any("planted" in e for e in page.errors) and any("127.0.0.1:9" in e for e in page.errors), page.errors
