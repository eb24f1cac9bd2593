"""``evaluate_summaries`` on planted generations (a fake sampler, no model): the result's layout, PRR per
estimator against ROUGE-L, and its HTML report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.generate import evaluate, prompts
from caveat.generate.documents import Document
from caveat.generate.estimators import Context
from caveat.generate.quality import rouge_l
from caveat.generate.sampling import Answer, Generation, SamplingConfig
from caveat.report.generation import generation_report

DOCS = [Document(str(i), f"Article {i} about topic {i}.", f"Topic {i} was in the news today.") for i in range(8)]
# what the "model" writes for each document: the reference (quality 1), a near miss, or unrelated words
WRITES = {
    0: "Topic 0 was in the news today.",
    1: "Topic 1 was in the news.",
    2: "Topic 2 was news.",
    3: "Something else entirely.",
    4: "Topic 4 was in the news today.",
    5: "Nothing.",
    6: "Topic 6 news.",
    7: "",
}


class FakeLM:
    name = "fake-lm"

    def prompt(self, message: str) -> str:
        return message


class FakeSampler:
    """Stands in for ``Sampler``: the planted answer, whose log-probability falls as its ROUGE-L falls (so
    ``msp`` is a good estimator), and two samples."""

    def __init__(self, lm, config, cache=None):
        self.lm, self.config, self.generate_calls = lm, config, 0

    def require(self, internals):
        return self

    def __call__(self, prompt: str) -> Generation:
        self.generate_calls += 1
        i = next(k for k, d in enumerate(DOCS) if prompt == prompts.message(d))
        text = WRITES[i]
        good = rouge_l(text, DOCS[i].summary)
        logprobs = np.full(4, -0.1 - 2.0 * (1.0 - good))  # (T,)
        answer = Answer(text, [1, 2, 3, 4], logprobs, np.full(4, 1.0 + (i % 3)), True)  # entropy: unrelated
        other = Answer(f"sample {i}", [5], np.array([-1.0]), np.array([1.0]), True)
        return Generation(prompt, answer, [other, answer], seconds=0.5)


@pytest.fixture
def result(monkeypatch):
    monkeypatch.setattr(evaluate, "Sampler", FakeSampler)
    return evaluate.evaluate_summaries(
        DOCS,
        FakeLM(),
        sampling=SamplingConfig(samples=2, max_new_tokens=64),
        estimators=["msp", "mean_token_entropy", "lexical_similarity"],
        context=Context(lm=None),
        n_boot=50,
    )


def test_result_layout_quality_and_records(result):
    q = np.array([rouge_l(WRITES[i], DOCS[i].summary) for i in range(8)])
    assert result["task"] == "summarise" and result["quality"] == "rougeL" and result["n"] == 8
    assert result["mean_quality"] == {"rougeL": pytest.approx(q.mean())}
    assert result["sampling"]["max_new_tokens"] == 64 and result["generate_calls"] == 8
    assert set(result["estimators"]) == {"msp", "mean_token_entropy", "lexical_similarity"}
    row = result["estimators"]["msp"]
    assert set(row) == {
        "n",
        "mean_quality",
        "prr",
        "prr_ci",
        "quality_at",
        "quality_coverage",
        "seconds_per_question",
    }
    assert row["prr"] == pytest.approx(1.0)  # msp is a decreasing function of the planted quality
    assert result["estimators"]["mean_token_entropy"]["prr"] < 0.9
    records = result["records"]
    assert [r["id"] for r in records] == [d.id for d in DOCS]
    assert records[7]["answer"] == "" and records[7]["quality"] == {"rougeL": 0.0}
    assert records[0]["references"] == [DOCS[0].summary] and records[0]["quality"]["rougeL"] == 1.0
    assert json.loads(json.dumps(result)) == result


def test_report_of_a_summary_result(result):
    report = generation_report(result, data="xsum.jsonl")
    table = next(t for s in report.sections for t in s.tables if t.key == "estimators")
    assert table.columns[:3] == ["estimator", "PRR", "95% interval"]
    assert table.rows[0][0] == "msp"  # ranked by PRR
    examples = next(t for s in report.sections for t in s.tables if t.key == "examples")
    assert examples.rows[0][:4] == ["0", WRITES[0], DOCS[0].summary, 1.0]


def test_one_quality_only_gives_a_warning(monkeypatch):
    monkeypatch.setattr(evaluate, "Sampler", FakeSampler)
    out = evaluate.evaluate_summaries(
        [DOCS[0], DOCS[4]], FakeLM(), estimators=["msp"], context=Context(lm=None), n_boot=10
    )
    assert out["estimators"]["msp"] == {"n": 2, "seconds_per_question": pytest.approx(0.0, abs=0.01)}
    assert "every greedy summary has rougeL 1" in out["warning"]
    assert out["sampling"]["max_new_tokens"] == evaluate.SUMMARY_MAX_NEW_TOKENS
