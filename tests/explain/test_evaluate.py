"""caveat evaluate --explain-faithfulness and caveat explain on tiny runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.explain.evaluate import explanation_faithfulness

FAST = {"lime": {"samples": 80}, "shap": {"max_evals": 60}, "ig": {"steps": 8}}


@pytest.fixture(scope="module")
def report(uncalibrated_run) -> dict:
    return explanation_faithfulness(
        uncalibrated_run, "test", methods=["ig", "occlusion", "lime", "shap"], max_examples=8, options=FAST
    )


def test_every_method_gets_faithfulness_cost_and_agreement(report):
    assert report["n"] == 8 and set(report["methods"]) == {"ig", "occlusion", "lime", "shap", "random"}
    for name, row in report["methods"].items():
        assert row["n"] == 8 and {"comprehensiveness", "sufficiency", "deletion_aopc", "comprehensiveness_at"} <= set(
            row
        )
        if name != "random":
            assert row["evaluations"]["mean"] > 0 and row["seconds"]["median"] > 0
    assert report["methods"]["occlusion"]["evaluations"]["mean"] > 1  # F + 1 per text
    assert report["methods"]["lime"]["evaluations"]["mean"] == 80
    assert report["methods"]["ig"]["evaluations"]["mean"] == 10
    assert len(report["agreement"]) == 6 and set(report["stability"]) == {
        "lime"
    }  # shap's partition explainer does not sample
    assert report["stability"]["lime"]["n"] == 8 and -1 <= report["stability"]["lime"]["spearman"] <= 1
    assert all(len(v) == 3 for v in report["examples"].values())
    # on a planted keyword model the deletion-based figures separate real explanations from random ones
    occ, rnd = report["methods"]["occlusion"], report["methods"]["random"]
    assert occ["comprehensiveness"]["mean"] > rnd["comprehensiveness"]["mean"]
    assert occ["sufficiency"]["mean"] < rnd["sufficiency"]["mean"]


def test_the_uncertainty_check_runs_on_the_most_uncertain_inputs(report):
    u = report["uncertainty"]
    assert u["n"] == 2 and "25% most uncertain" in u["selected_by"]  # uncalibrated run: top quartile of 8
    for row in u["methods"].values():
        assert 0 <= row["lower_than_random"] <= 1


def test_a_calibrated_run_selects_what_its_policy_does_not_answer(served_run):
    out = explanation_faithfulness(served_run, "test", methods=["occlusion"], max_examples=10)
    assert out["uncertainty"]["selected_by"] == "the calibrated policy abstains or routes"
    assert out["target"] == "calibrated probability of the predicted label"


def test_evaluate_merges_the_figures_into_metrics_json(uncalibrated_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(uncalibrated_run, run)
    out = evaluate_run(run, "test", explain={"methods": ["occlusion"], "max_examples": 3})
    stored = json.loads((run / "metrics.json").read_text())["test"]["explanations"]
    assert stored["n"] == 3 and stored["methods"]["occlusion"] == out["explanations"]["methods"]["occlusion"]


def test_ner_runs_and_unknown_methods_are_refused(ner_run, uncalibrated_run):
    with pytest.raises(ConfigError, match="for text-classification runs so far"):
        evaluate_run(ner_run, "test", explain={"methods": ["occlusion"]}, write=False)
    with pytest.raises(ConfigError, match="unknown explanation method 'gradcam'"):
        explanation_faithfulness(uncalibrated_run, methods=["gradcam"])


def test_cli_explain_prints_json_and_writes_an_escaped_snippet(uncalibrated_run, tmp_path):
    html = tmp_path / "x.html"
    result = CliRunner().invoke(
        app,
        [
            "explain",
            str(uncalibrated_run),
            "the beta <script>alert(1)</script> card",
            "--method",
            "occlusion",
            "--html",
            str(html),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["method"] == "occlusion" and body["target"]["label"] == "second"
    assert [w["word"] for w in body["words"]] == ["the", "beta", "<script>alert(1)</script>", "card"]
    page = html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count('title="') == 4


def test_cli_explain_a_ner_span(ner_run):
    result = CliRunner().invoke(
        app,
        ["explain", str(ner_run), "alice smith visited paris", "--span", "paris", "--method", "ig", "--steps", "8"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["target"]["kind"] == "span" and [w["feature"] for w in body["words"]] == [True, True, True, False]
