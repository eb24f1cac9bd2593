"""The page of caveat compare, built from a planted comparison: every figure it shows is the
comparison's own (the table as compare.md has it) or their exact difference against the baseline."""

from __future__ import annotations

import copy

import pytest

from caveat.errors import ConfigError
from caveat.report.compare import compare_report
from caveat.report.html import render_html


def _row(
    name: str, accuracy: float, ece: float, after: float, cr_accuracy: float, cr_ece: float, per_step: float | None
) -> dict:
    example = {
        "original": "a <b>fine</b> film",
        "adversarial": "a <b>good</b> film",
        "label": "pos",
        "adversarial_label": "neg",
        "adversarial_prob": 0.7,
        "similarity": 0.9,
    }
    return {
        "run": name,
        "path": f"/runs/{name}",
        "recipe": f"recipe of {name}",
        "calibrated": False,
        "n": 100,
        "accuracy": accuracy,
        "ece": ece,
        "calibrated_ece": None,
        "attack": {
            "greedy": {
                "n": 50,
                "clean_accuracy": accuracy,
                "after_attack_accuracy": after,
                "success_rate": 0.5,
                "mean_queries": 40.0,
                "mean_changed_fraction": 0.1,
                "mean_similarity": 0.9,
                "reused": True,
                "examples": [example] * 3,
            }
        },
        "shift": {
            "cr": {
                "n": 80,
                "accuracy": cr_accuracy,
                "macro_f1": cr_accuracy,
                "ece": cr_ece,
                "calibrated_ece": None,
                "least_confidence_auroc": 0.6,
            }
        },
        "training": {
            "seconds": None if per_step is None else per_step * 10,
            "steps": 10,
            "processes": 1,
            "seconds_per_step": per_step,
        },
    }


@pytest.fixture
def planted() -> dict:
    rows = [
        _row("erm", 0.90, 0.05, 0.30, 0.80, 0.13, 1.0),
        _row("fgm", 0.91, 0.04, 0.40, 0.82, 0.10, 2.0),
        _row("aug", 0.88, 0.07, 0.55, 0.79, 0.15, None),
    ]
    return {
        "data": "test",
        "attacks": ["greedy"],
        "shifts": {"cr": "cr.txt"},
        "settings": {"max_examples": 50, "max_change": 0.2, "min_similarity": 0.8, "max_candidates": 20, "seed": 0},
        "baseline": "erm",
        "rows": rows,
        "notes": ["after-attack accuracy: over the first 50", "seconds per step: x"],
        "columns": ["run", "recipe", "accuracy", "ECE", "after greedy", "cr accuracy", "cr ECE", "s/step"],
        "table": [
            [
                r["run"],
                r["recipe"],
                r["accuracy"],
                r["ece"],
                r["attack"]["greedy"]["after_attack_accuracy"],
                r["shift"]["cr"]["accuracy"],
                r["shift"]["cr"]["ece"],
                r["training"]["seconds_per_step"],
            ]
            for r in rows
        ],
    }


def test_the_page_shows_the_table_and_exact_changes_against_the_baseline(planted):
    page = compare_report(planted)
    assert page.section_keys == ["compare", "baseline", "attacks", "shift", "cost"]
    assert page.runs == ["/runs/erm", "/runs/fgm", "/runs/aug"] and page.n == 100
    table = page.section("compare").table("compare")
    assert table.columns == planted["columns"] and table.rows == planted["table"]
    assert page.section("compare").notes == ["after-attack accuracy: over the first 50"]  # the cost note: cost section
    assert page.section("cost").notes == ["seconds per step: x"]

    changes = page.section("baseline").table("baseline").records()
    assert [r["run"] for r in changes] == ["fgm", "aug"]  # the baseline is not compared with itself
    fgm, aug = changes
    assert fgm["Δ accuracy"] == pytest.approx(0.01) and fgm["Δ after greedy"] == pytest.approx(0.10)
    assert fgm["Δ cr accuracy"] == pytest.approx(0.02) and fgm["Δ cr ECE"] == pytest.approx(-0.03)
    assert fgm["s/step ÷ baseline"] == pytest.approx(2.0) and aug["s/step ÷ baseline"] is None  # no cost recorded
    assert aug["Δ after greedy"] == pytest.approx(0.25)
    figure = page.section("baseline").figure("baseline")
    assert figure.categories == ["fgm", "aug"]
    assert [g.name for g in figure.groups] == ["Δ accuracy", "Δ after greedy", "Δ ECE", "Δ cr ECE"]
    assert (
        fgm["Δ ECE"] == pytest.approx(-0.01)
        and aug["Δ ECE"] == pytest.approx(0.02)
        and figure.groups[3].means == [pytest.approx(-0.03), pytest.approx(0.02)]
    )
    assert figure.groups[1].means == [pytest.approx(0.10), pytest.approx(0.25)]

    scores = page.section("compare").figure("scores")
    assert [g.name for g in scores.groups] == ["clean accuracy", "after greedy", "cr (shifted)"]
    assert scores.groups[1].means == [0.30, 0.40, 0.55]

    attacks = page.section("attacks")
    assert [r["run"] for r in attacks.table("attacks").records()] == ["erm", "fgm", "aug"]
    assert len(attacks.table("adversarial_examples").rows) == 3 * 2  # two per run
    shift = page.section("shift").table("shift").records()
    assert shift[1]["Δ accuracy (vs in-domain)"] == pytest.approx(0.82 - 0.91)


def test_another_baseline_and_a_bad_one(planted):
    planted["baseline"] = "fgm"
    changes = compare_report(planted).section("baseline").table("baseline").records()
    assert [r["run"] for r in changes] == ["erm", "aug"] and changes[0]["Δ after greedy"] == pytest.approx(-0.10)
    with pytest.raises(ConfigError, match="baseline 'nope' is not one of the compared runs \\(erm, fgm, aug\\)"):
        compare_report({**planted, "baseline": "nope"})
    del planted["baseline"]  # compare.json written before baselines: the first run
    assert compare_report(planted).section("baseline").title == "Against the baseline (erm)"


def test_one_run_no_attack_no_shift(planted):
    one = copy.deepcopy(planted)
    one.update(rows=one["rows"][:1], table=one["table"][:1], attacks=[], shifts={}, baseline=None)
    page = compare_report(one)
    assert page.section_keys == ["compare", "cost"]  # nothing to set against a baseline, no attack, no shift
    assert page.section("compare").figure("scores").title == "accuracy: clean"


def test_the_page_escapes_user_text(planted):
    html = render_html(compare_report(planted))
    assert "<b>fine</b>" not in html and "&lt;b&gt;fine&lt;/b&gt;" in html
    assert "runs <code>/runs/erm</code>, <code>/runs/fgm</code>, <code>/runs/aug</code>" in html
    assert html.count("data:image/png;base64,") == 4  # scores, ECE, change against the baseline, cost


def test_a_page_that_fails_to_render_writes_nothing(planted, tmp_path, monkeypatch):
    import caveat.robustness.compare
    from caveat.robustness.compare import write_compare

    def broken(report):
        raise RuntimeError("no figure")

    monkeypatch.setattr(caveat.robustness.compare, "render_html", broken)
    with pytest.raises(RuntimeError, match="no figure"):
        write_compare(planted, tmp_path / "out")
    assert not (tmp_path / "out").exists()
