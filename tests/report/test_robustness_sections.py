"""The shift and attacks sections: shown when metrics.json holds shift.* / attack.* for the report's
split, with the saved figures (read, not recomputed), escaped examples; absent otherwise."""

from __future__ import annotations

import json
import shutil

import pytest

from caveat.evaluation.run import evaluate_run
from caveat.report import build_report, write_report
from caveat.report.sections.attacks import marked
from caveat.robustness.run import attack_run
from tests.fakes import planted_texts, write_jsonl

PLANTED_ATTACK = {
    "original": "<script>alert(7)</script> the alpha card",
    "adversarial": "<script>alert(7)</script> the alpha phone",
    "label": "first",
    "original_label": "first",
    "original_prob": 0.9,
    "adversarial_label": "second",
    "adversarial_prob": 0.6,
    "attacked": True,
    "success": True,
    "queries": 9,
    "words": 4,
    "changed": 1,
    "similarity": 0.91,
    "changed_fraction": 0.25,
}


@pytest.fixture(scope="module")
def evaluated_run(text_runs, report_data, tiny_backbone, tmp_path_factory):
    """A copy of the uncalibrated report run, evaluated with two shifts and attacked (both saved in metrics.json)."""
    run = shutil.copytree(text_runs[1], tmp_path_factory.mktemp("robust-report") / "run")
    other = write_jsonl(
        run.parent / "other.jsonl", [{**r, "text": r["text"] + " gamma beta"} for r in planted_texts(30, seed=9)]
    )
    evaluate_run(run, "test", shift={"same": str(report_data / "test.jsonl"), "other": str(other)})
    attack_run(
        run,
        "test",
        "greedy,charswap",
        max_examples=10,
        max_change=0.3,
        min_similarity=0.5,
        similarity_model=str(tiny_backbone),
    )
    return run


def test_sections_show_what_metrics_json_holds(evaluated_run):
    saved = json.loads((evaluated_run / "metrics.json").read_text())
    report = build_report(evaluated_run)
    assert report.section_keys == [
        "overview",
        "performance",
        "calibration",
        "confidence",
        "risk_coverage",
        "shift",
        "attacks",
        "weak_spots",
    ]
    shift = report.section("shift")
    rows = shift.table("shift").records()
    assert [r["set"].split(" ")[0] for r in rows] == ["test", "same", "other"]
    assert rows[0]["accuracy"] == saved["test"]["accuracy"] == rows[1]["accuracy"] and rows[1]["Δ accuracy"] == 0
    assert rows[2]["ECE"] == saved["test"]["shift"]["other"]["ece"] and rows[2]["examples"] == 30
    assert len(shift.notes) == 1  # the saved in-domain figures are this report's
    scores = shift.table("shift_scores").records()
    assert {(r["set"], r["score"]) for r in scores} == {
        (s, k) for s in ("same", "other") for k in ("least_confidence", "entropy", "energy")
    }
    assert all(r["AUROC"] == 0.5 for r in scores if r["set"] == "same")

    attacks = report.section("attacks")
    table = {r["attack"]: r for r in attacks.table("attacks").records()}
    for name, a in saved["attack"]["test"].items():
        assert table[name]["after-attack accuracy"] == a["after_attack_accuracy"] and table[name]["examples"] == 10
        assert table[name]["min similarity"] == 0.5
    shown = attacks.table("adversarial_examples").records()
    assert len(shown) == sum(min(3, len(a["examples"])) for a in saved["attack"]["test"].values())


def test_examples_are_escaped_and_marked(evaluated_run, tmp_path):
    run = shutil.copytree(evaluated_run, tmp_path / "run")
    path = run / "metrics.json"
    saved = json.loads(path.read_text())
    saved["attack"]["test"]["greedy"]["examples"] = [PLANTED_ATTACK]
    saved["test"]["accuracy"] = 0.123  # as if the run changed after evaluate
    path.write_text(json.dumps(saved))
    report = build_report(run)
    row = next(r for r in report.section("attacks").table("adversarial_examples").records() if r["attack"] == "greedy")
    assert (
        row["adversarial"] == "<script>alert(7)</script> the alpha [phone]"
        and row["predicted (probability)"] == "second (0.60)"
    )
    assert any("saved in-domain accuracy (0.1230) differs" in n for n in report.section("shift").notes)
    html = write_report(report, tmp_path / "report.html").read_text()
    assert "<script>alert(7)" not in html and "&lt;script&gt;alert(7)" in html


def test_no_saved_figures_no_sections(uncalibrated_report, ner_reports):
    assert not {"shift", "attacks"} & set(uncalibrated_report[0].section_keys)
    assert not {"shift", "attacks"} & set(ner_reports[1].section_keys)


def test_marked():
    assert marked("the good movie", "the gud movie") == "the [gud] movie"
    assert marked("a b", "a b c") == "a b c"  # word counts differ: shown as it is


POLICY = ("caught", "answered_clean", "answered_error_clean", "answered_after_attack", "answered_error_after_attack")


def test_calibrated_run_shows_the_attacks_read_through_its_policy(text_runs, tiny_backbone, tmp_path):
    run = shutil.copytree(text_runs[0], tmp_path / "run")  # calibrated
    options = {"max_examples": 10, "max_change": 0.3, "min_similarity": 0.5, "similarity_model": str(tiny_backbone)}
    attack_run(run, "test", "greedy", **options)
    path = run / "metrics.json"
    saved = json.loads(path.read_text())
    greedy = saved["attack"]["test"]["greedy"]
    assert set(POLICY) <= set(greedy)
    saved["attack"]["test"]["older"] = {k: v for k, v in greedy.items() if k not in POLICY}  # saved uncalibrated
    path.write_text(json.dumps(saved))
    attacks = build_report(run).section("attacks")
    (row,) = attacks.table("attack_policy").records()  # only the attack read through the policy
    assert row == {
        "attack": "greedy",
        "successes": greedy["successes"],
        "caught": greedy["caught"],
        "answered (clean)": greedy["answered_clean"],
        "answered error (clean)": greedy["answered_error_clean"],
        "answered (after attack)": greedy["answered_after_attack"],
        "answered error (after attack)": greedy["answered_error_after_attack"],
    }
    assert any("not read through its policy: older" in n for n in attacks.notes)
    assert [t.key for t in attacks.tables] == ["attacks", "attack_policy", "adversarial_examples"]


def test_uncalibrated_run_says_its_attacks_are_not_read_through_a_policy(evaluated_run):
    attacks = build_report(evaluated_run).section("attacks")
    assert "attack_policy" not in [t.key for t in attacks.tables]
    assert any(n.startswith("The run is not calibrated") for n in attacks.notes)
