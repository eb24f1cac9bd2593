"""generate-eval end to end on a tiny random LM: shared samples, metrics, records, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.generate.correctness import normalize_answer
from caveat.generate.data import Question
from caveat.generate.estimators import Context
from caveat.generate.evaluate import evaluate_generation, score_questions
from caveat.generate.sampling import SampleCache, Sampler, SamplingConfig
from caveat.generate.semantic import EmbeddingEquivalence
from tests.fakes import DistinctEncoder


def _questions(n=12):
    words = ["cat", "dog", "tree", "city", "road", "house"]
    return [Question(f"q{i}", f"where is the {words[i % 6]} ?", (words[(i + 1) % 6], "the"), None) for i in range(n)]


def test_estimators_share_one_generation_per_question(tiny_lm, monkeypatch):
    calls = []
    real = tiny_lm.model.generate
    monkeypatch.setattr(tiny_lm.model, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    sampler = Sampler(tiny_lm, SamplingConfig(samples=3, max_new_tokens=4))
    ctx = Context(lm=tiny_lm, equivalence=EmbeddingEquivalence(0.9, encoder=DistinctEncoder()))
    names = [
        "msp",
        "perplexity",
        "mean_token_entropy",
        "lexical_similarity",
        "semantic_entropy",
        "num_semantic_sets",
        "self_consistency",
    ]
    scored = score_questions(_questions(5), sampler, names, context=ctx)
    assert len(calls) == 5 and sampler.generate_calls == 5
    for i, g in enumerate(scored.generations):
        assert scored.scores["msp"][i] == pytest.approx(-g.greedy.logprobs.sum())
        assert scored.scores["num_semantic_sets"][i] == len({normalize_answer(s.text) for s in g.samples})
    assert all((scored.seconds[n] >= 0).all() for n in names)


def test_evaluate_generation_reports_every_rule_and_estimator(tiny_lm, tmp_path):
    qs = _questions(12)
    # plant correctness: references are whatever the greedy answer says for half the questions
    sampler = Sampler(tiny_lm, SamplingConfig(samples=2, max_new_tokens=3), cache=SampleCache(tmp_path))
    answers = [
        sampler(tiny_lm.prompt(f"Answer the question in a few words.\n\nQuestion: {q.question}\nAnswer:")).greedy.text
        for q in qs
    ]
    qs = [Question(q.id, q.question, (answers[i] if i % 2 else "zzz",)) for i, q in enumerate(qs)]
    out = evaluate_generation(
        qs,
        tiny_lm,
        sampling=SamplingConfig(samples=2, max_new_tokens=3),
        estimators=["msp", "mean_token_entropy"],
        rule="exact",
        cache=SampleCache(tmp_path),
        n_boot=50,
    )
    assert out["accuracy"]["exact"] == pytest.approx(0.5)
    assert set(out["accuracy"]) == {"exact", "contains", "f1@0.5"}
    assert out["generate_calls"] == 0 and out["seconds_per_question"]["cached"] == 12  # all from the cache
    m = out["estimators"]["msp"]
    assert 0 <= m["auroc"] <= 1 and m["auroc_ci"][0] <= m["auroc"] <= m["auroc_ci"][1]
    assert len(out["records"]) == 12 and out["records"][1]["correct"] and not out["records"][0]["correct"]
    assert "exact" in out["rule_description"]


def test_one_outcome_only_gives_a_warning_not_a_crash(tiny_lm):
    out = evaluate_generation(
        _questions(4),
        tiny_lm,
        sampling=SamplingConfig(samples=0, max_new_tokens=2),
        estimators=["msp"],
        rule="exact",
        n_boot=10,
    )
    assert "warning" in out and "auroc" not in out["estimators"]["msp"]


@pytest.fixture
def squad_file(tmp_path):
    data = {
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "the cat is in the house .",
                        "qas": [
                            {
                                "id": f"q{i}",
                                "question": f"where is the {w} ?",
                                "answers": [{"text": "house", "answer_start": 0}],
                            }
                            for i, w in enumerate(["cat", "dog", "tree", "road", "city", "phone"])
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    return path


def test_cli_generate_eval_and_calibrate_and_generate(tiny_lm_dir, squad_file, tmp_path):
    runner = CliRunner()
    common = ["--lm", str(tiny_lm_dir), "--samples", "3", "--max-new-tokens", "3", "--cache", str(tmp_path / "c")]
    r = runner.invoke(
        app,
        [
            "generate-eval",
            "--data",
            str(squad_file),
            *common,
            "--estimators",
            "msp,perplexity",
            "--rule",
            "contains",
            "--out",
            str(tmp_path / "eval.json"),
            "--n-boot",
            "20",
            "--html",
            str(tmp_path / "report.html"),
        ],
    )
    assert r.exit_code == 0, r.output
    full = json.loads((tmp_path / "eval.json").read_text())
    assert full["n"] == 6 and len(full["records"]) == 6 and full["generate_calls"] == 6
    page = (tmp_path / "report.html").read_text()
    assert "Detecting wrong answers" in page and "where is the cat ?" in page
    assert json.loads((tmp_path / "report.json").read_text())["task"] == "generation"
    clash = runner.invoke(
        app,
        [
            "generate-eval",
            "--data",
            str(squad_file),
            *common,
            "--estimators",
            "msp",
            "--out",
            str(tmp_path / "x.json"),
            "--html",
            str(tmp_path / "x.html"),
        ],
    )
    assert clash.exit_code != 0 and "--html" in str(clash.exception)
    printed = json.loads(r.stdout)
    assert "records" not in printed and printed["rule"] == "contains"
    # planted scores would be needed for a feasible bound on 6 questions: an infeasible target is a clear error
    r = runner.invoke(
        app,
        [
            "generate-calibrate",
            "--data",
            str(squad_file),
            *common,
            "--estimator",
            "msp",
            "--target-risk",
            "0.1",
            "--out",
            str(tmp_path / "policy.json"),
        ],
    )
    assert r.exit_code != 0 and "no abstention threshold" in str(r.exception)


def test_cli_generate_prints_answer_uncertainty_and_no_decision_without_policy(tiny_lm_dir):
    r = CliRunner().invoke(
        app,
        [
            "generate",
            "where is the cat ?",
            "--lm",
            str(tiny_lm_dir),
            "--samples",
            "2",
            "--max-new-tokens",
            "3",
            "--estimators",
            "msp,mean_token_entropy",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out["uncertainty"]) == {"msp", "mean_token_entropy"} and len(out["samples"]) == 2
    assert out["decision"] is None and "generate-calibrate" in out["reason"]
