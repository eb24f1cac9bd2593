"""The explanations section: shown when metrics.json holds ``<data>.explanations`` (as ``caveat evaluate
--explain-faithfulness`` wrote it), with the saved figures (read, not recomputed) on the page, a
faithfulness plot, and example inputs drawn escaped; absent otherwise."""

from __future__ import annotations

import base64
import html as htmllib
import io
import json
import re
import shutil
from pathlib import Path

from PIL import Image

from caveat.report import Report, build_report, render_html, write_report
from caveat.report.html import format_cell

FIGURES = {
    "comprehensiveness": ("comprehensiveness", "comp. se"),
    "sufficiency": ("sufficiency", "suff. se"),
    "deletion_aopc": ("deletion AOPC", "AOPC se"),
}
IMG = re.compile(r'<img src="data:image/png;base64,([^"]*)"')


def saved_block(report: Report) -> dict:
    return json.loads((Path(report.run) / "metrics.json").read_text(encoding="utf-8"))[report.data]["explanations"]


def page_rows(page: str, key: str) -> list[list[str]]:
    """The body cells of table ``key`` as the page shows them (unescaped text)."""
    table = re.search(rf'<table data-key="{re.escape(key)}">(.*?)</table>', page, re.S).group(1)
    body = table.split("<tbody>", 1)[1]
    return [
        [htmllib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_section_shows_the_saved_figures(explained_report):
    report, path = explained_report
    block = saved_block(report)
    assert block["n"] == 4 and list(block["methods"]) == ["occlusion", "lime", "random"]
    assert report.section_keys == [
        "overview",
        "performance",
        "calibration",
        "confidence",
        "risk_coverage",
        "conformal",
        "decisions",
        "explanations",
        "weak_spots",
    ]
    section = report.section("explanations")
    assert section.metric("explanations.n") == 4 and section.metric("explanations.target") == block["target"]
    assert any("--explain-faithfulness" in n for n in section.notes)
    assert any("only useful where it beats `random`" in n for n in section.notes)

    rows = {r["method"]: r for r in section.table("faithfulness").records()}
    assert list(rows) == ["occlusion", "lime", "random"]
    for name, m in block["methods"].items():
        assert m["n"] == 4
        for key, columns in FIGURES.items():
            assert (rows[name][columns[0]], rows[name][columns[1]]) == (m[key]["mean"], m[key]["se"])
    for name in ("occlusion", "lime"):
        m = block["methods"][name]
        assert rows[name]["model evaluations"] == m["evaluations"]["mean"] > 0
        assert rows[name]["median seconds"] == m["seconds"]["median"]
        assert re.fullmatch(r"[0-3] of 3", rows[name]["beats random"])
    assert rows["random"]["model evaluations"] is None and rows["random"]["beats random"] is None

    by_share = {(r["method"], r["figure"]): r for r in section.table("by_share").records()}
    for name, m in block["methods"].items():
        for key in ("comprehensiveness", "sufficiency"):
            assert by_share[name, key]["5%"] == m[f"{key}_at"]["0.05"]["mean"]
            assert by_share[name, key]["50%"] == m[f"{key}_at"]["0.5"]["mean"]

    figure = section.figure("faithfulness")
    assert (
        figure.kind == "means" and figure.categories == ["occlusion", "lime", "random"] and figure.baseline == "random"
    )
    for group, key in zip(figure.groups, ("comprehensiveness", "sufficiency")):
        assert group.name == key
        assert group.means == [m[key]["mean"] for m in block["methods"].values()]
        assert group.errors == [m[key]["se"] for m in block["methods"].values()]

    (agreement,) = section.table("agreement").records()
    saved = block["agreement"]["occlusion~lime"]
    assert agreement == {
        "methods": "occlusion vs lime",
        "Spearman": saved["spearman"],
        "Kendall": saved["kendall"],
        "top-k overlap": saved["top_k_overlap"],
    }
    (stability,) = section.table("stability").records()
    saved = block["stability"]["lime"]
    assert stability == {
        "method": "lime",
        "seeds": "0 and 1",
        "inputs": saved["n"],
        "Spearman": saved["spearman"],
        "Kendall": saved["kendall"],
        "top-k overlap": saved["top_k_overlap"],
    }
    unc = block["uncertainty"]
    assert unc["selected_by"] == "the calibrated policy abstains or routes"
    uncertainty = {r["method"]: r for r in section.table("uncertainty").records()}
    assert list(uncertainty) == ["occlusion", "lime"]
    for name, u in unc["methods"].items():
        assert uncertainty[name]["inputs"] == unc["n"]
        assert (
            uncertainty[name]["lower than random"],
            uncertainty[name]["top-3 drop"],
            uncertainty[name]["random drop"],
        ) == (u["lower_than_random"], u["top_drop"], u["random_drop"])
    assert unc["selected_by"] in section.table("uncertainty").note

    shown = [(e.method, e.text, e.attribution) for e in section.explanations]
    assert shown == [
        (m, d["text"], {k: v for k, v in d.items() if k != "text"})
        for m, examples in block["examples"].items()
        for d in examples[:3]
    ]
    assert [m for m, _, _ in shown] == ["occlusion"] * 3 + ["lime"] * 3

    # the page shows the same numbers, as the report formats them
    page = path.read_text(encoding="utf-8")
    assert page_rows(page, "faithfulness") == [[format_cell(c) for c in r] for r in section.table("faithfulness").rows]
    occlusion = block["methods"]["occlusion"]
    assert page_rows(page, "faithfulness")[0][:3] == [
        "occlusion",
        format_cell(occlusion["comprehensiveness"]["mean"]),
        format_cell(occlusion["comprehensiveness"]["se"]),
    ]
    for key in ("agreement", "stability", "uncertainty"):
        assert page_rows(page, key) == [[format_cell(c) for c in r] for r in section.table(key).rows]


def test_examples_are_drawn_escaped_and_the_page_stays_self_contained(explained_report):
    report, path = explained_report
    page = path.read_text(encoding="utf-8")
    section = report.section("explanations")
    words = [w["word"] for e in section.explanations for w in e.attribution["words"]]
    assert sum(w.startswith("<script>alert(") for w in words) >= 3, "the planted texts are the first explained"
    assert "<script" not in page.lower() and "&lt;script&gt;alert(" in page
    assert page.count('<div class="explained" data-method=') == page.count('class="caveat-explanation"') == 6
    assert page.count("<h3>Examples: ") == 2
    assert render_html(report) == page  # the page is a function of the Report alone
    assert Report.model_validate_json(path.with_suffix(".json").read_text(encoding="utf-8")) == report
    images = IMG.findall(page)
    assert len(images) == sum(len(s.figures) for s in report.sections)
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data, validate=True))).verify()


def _ms(mean, se=0.01) -> dict:
    return {"mean": mean, "se": se}


def planted_block() -> dict:
    """An explanations block with the awkward cases: a method without sufficiency, an uncertainty
    check that selected nothing, an unreadable example, and user text to escape."""

    def method(c, s, a, cost=True):
        m = {
            "comprehensiveness": _ms(c),
            "deletion_aopc": _ms(a),
            "value": _ms(0.8),
            "n": 5,
            "comprehensiveness_at": {"0.01": _ms(c), "0.5": _ms(c + 0.1)},
        }
        if s is not None:  # else: a block without sufficiency
            m |= {"sufficiency": _ms(s), "sufficiency_at": {"0.01": _ms(s), "0.5": _ms(s - 0.01)}}
        return m | (
            {"evaluations": _ms(12.0, 0.5), "seconds": {"mean": 0.03, "median": 0.02, "se": 0.001}} if cost else {}
        )

    example = {
        "method": "occlusion",
        "target": {"kind": "label", "name": "p(<b>bold</b>)", "label": "<b>bold</b>"},
        "value": 0.7,
        "evaluations": 4,
        "seconds": 0.01,
        "details": {},
        "text": "<script>alert(9)</script> the card",
        "words": [
            {"word": "<script>alert(9)</script>", "attribution": 0.4, "feature": True},
            {"word": "the", "attribution": -0.1, "feature": True},
            {"word": "card", "attribution": 0.0, "feature": True},
        ],
    }
    return {
        "data": "test",
        "n": 5,
        "seed": 0,
        "options": {"occlusion": {}, "lime": {"samples": 50}, "shap": {}},
        "random_draws": 5,
        "target": "calibrated probability of the predicted label",
        "methods": {
            "occlusion": method(0.3, 0.05, 0.2),
            "lime": method(0.25, 0.3, 0.15),
            "shap": method(0.2, None, 0.12),
            "random": method(0.1, 0.2, 0.05, cost=False),
        },
        "agreement": {"occlusion~lime": {"spearman": None, "kendall": 0.5, "top_k_overlap": 0.75}},
        "stability": {},
        "uncertainty": {
            "selected_by": "the calibrated policy abstains or routes",
            "n": 0,
            "k": 3,
            "score": "entropy",
            "methods": {"occlusion": {"lower_than_random": None, "top_drop": None, "random_drop": None}},
        },
        "examples": {"occlusion": [example, {"method": "occlusion", "value": 0.5}]},
    }


def test_a_planted_block_renders_its_awkward_cases(text_runs, tmp_path):
    run = shutil.copytree(text_runs[1], tmp_path / "run")
    path = run / "metrics.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved["test"] = {**saved.get("test", {}), "accuracy": 0.123, "explanations": planted_block()}
    path.write_text(json.dumps(saved))
    report = build_report(run)
    section = report.section("explanations")
    rows = {r["method"]: r for r in section.table("faithfulness").records()}
    assert rows["occlusion"]["beats random"] == "3 of 3" and rows["lime"]["beats random"] == "2 of 3"
    assert rows["shap"]["beats random"] == "2 of 2" and rows["shap"]["sufficiency"] is None
    assert rows["random"]["median seconds"] is None and rows["occlusion"]["median seconds"] == 0.02
    assert section.figure("faithfulness").groups[1].means == [0.05, 0.3, None, 0.2]
    assert [t.key for t in section.tables] == ["faithfulness", "by_share", "agreement", "uncertainty"]  # no stability
    assert section.table("agreement").records()[0]["Spearman"] is None
    assert section.table("uncertainty").note.startswith("No explained input was selected")
    assert any("saved with these figures (0.1230) differs" in n for n in section.notes)
    assert any("1 saved example(s) could not be read" in n for n in section.notes)
    (example,) = section.explanations
    assert example.text == "<script>alert(9)</script> the card"

    page = write_report(report, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<b>bold" not in page
    assert "&lt;script&gt;alert(9)&lt;/script&gt;" in page and "p(&lt;b&gt;bold&lt;/b&gt;)" in page
    assert page_rows(page, "uncertainty") == [["occlusion", "0", "–", "–", "–"]]
    image = Image.open(io.BytesIO(base64.b64decode(IMG.findall(page)[-1])))  # the last figure: the faithfulness plot
    assert image.format == "PNG" and image.size == (540, 330)


def test_no_saved_block_no_section(calibrated_report, uncalibrated_report, ner_reports):
    for report, path in (calibrated_report, uncalibrated_report, (ner_reports[1], ner_reports[2])):
        assert "explanations" not in report.section_keys
        page = path.read_text(encoding="utf-8")
        assert 'id="explanations"' not in page and "Examples: " not in page and 'class="explained"' not in page
