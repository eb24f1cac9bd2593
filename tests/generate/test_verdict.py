"""The verdict line of ``caveat generate``: the policy's decision when there is one, else each estimator's
percentile among reference questions (planted reference scores, known percentiles), else the headline score
with its sign convention. End to end on the tiny random decoder (tests/conftest.py ``tiny_decoder``)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.errors import ConfigError, DataError
from caveat.generate.policy import GenerationPolicy
from caveat.generate.sampling import SamplingConfig
from caveat.generate.verdict import ReferenceScores, headline, verdict

SAMPLING = SamplingConfig(samples=2, max_new_tokens=3)
FLAGS = ["--samples", "2", "--max-new-tokens", "3", "--estimators", "msp,perplexity,mean_token_entropy"]
QUESTION = "where is alpha"


def reference_file(path, model: str, scores: dict[str, list[float]], *, auroc=None, sampling=SAMPLING, version=2):
    """A generate-eval result with per-question records holding ``scores`` (``version``: its scores_version)."""
    n = len(next(iter(scores.values())))
    records = [{"id": str(i), "scores": {k: v[i] for k, v in scores.items()}, "correct": True} for i in range(n)]
    estimators = {k: {"auroc": a} for k, a in (auroc or {}).items()}
    result = {"model": model, "sampling": asdict(sampling), "estimators": estimators, "records": records}
    path.write_text(json.dumps(result | ({"scores_version": version} if version > 1 else {})))
    return path


def generate(*args: str):
    result = CliRunner().invoke(app, ["generate", QUESTION, *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["verdict"] in result.stderr.splitlines()  # the same line, for a person
    return out


@pytest.fixture(scope="module")
def plain(tiny_decoder):
    """The answer with no policy and no reference (deterministic: seeded sampling)."""
    return generate("--lm", str(tiny_decoder), *FLAGS)


def test_without_policy_or_reference_the_headline_score_and_its_sign_are_named(plain):
    score = plain["uncertainty"]["mean_token_entropy"]
    first = " ".join(plain["answer"].split())[:20]
    assert plain["verdict"].startswith(f"answer: {first!r}"[:-1])
    assert f"headline score mean_token_entropy = {score:.4g} (higher = more uncertain)" in plain["verdict"]
    assert "--reference" in plain["verdict"] and "--policy" in plain["verdict"]  # how to read it
    assert "percentiles" not in plain


def test_with_reference_scores_each_estimator_gets_its_percentile(plain, tiny_decoder, tmp_path):
    s = plain["uncertainty"]
    scores = {  # 100 reference questions each; the answer's score sits above 30, 75 and 0 of them
        "msp": [s["msp"] - 1] * 30 + [s["msp"] + 1] * 70,
        "mean_token_entropy": [s["mean_token_entropy"] - 1] * 75 + [s["mean_token_entropy"] + 1] * 25,
        "perplexity": [s["perplexity"] + 1] * 100,
    }
    path = reference_file(tmp_path / "eval.json", str(tiny_decoder), scores, auroc={"msp": 0.7, "perplexity": 0.6})
    out = generate("--lm", str(tiny_decoder), *FLAGS, "--reference", str(path))
    assert out["answer"] == plain["answer"]
    assert out["percentiles"] == {"msp": 30.0, "perplexity": 0.0, "mean_token_entropy": 75.0}  # best AUROC first
    assert out["verdict"].endswith(
        "more uncertain than this share of 100 reference questions: msp 30%, perplexity 0%, mean_token_entropy 75%"
    )


@pytest.mark.parametrize("above", [True, False])
def test_with_a_policy_its_decision_is_the_verdict(plain, tiny_decoder, tmp_path, above):
    msp = plain["uncertainty"]["msp"]
    cut = 2 * msp if above else msp / 2  # planted: wrong exactly above the cut, so the threshold sits near it
    scores = np.linspace(0, 2 * cut, 400)
    policy = GenerationPolicy.fit(
        scores,
        scores > cut,
        lm=str(tiny_decoder),
        sampling=SAMPLING,
        estimator="msp",
        rule="contains",
        target_risk=0.05,
        delta=0.1,
    )
    policy.save(tmp_path / "policy.json")
    out = generate("--policy", str(tmp_path / "policy.json"), "--estimators", "msp")
    want = "answer" if above else "abstain"
    assert out["decision"] == want
    assert f"· policy: {want.upper()} ({out['reason']})" in out["verdict"]


def test_reference_scores_from_another_model_or_sampling_are_refused(plain, tiny_decoder, tmp_path):
    scores = {"msp": [0.1, 0.2]}
    other_model = reference_file(tmp_path / "m.json", "default", scores)
    result = CliRunner().invoke(
        app, ["generate", QUESTION, "--lm", str(tiny_decoder), *FLAGS, "--reference", str(other_model)]
    )
    assert isinstance(result.exception, ConfigError) and "from the model 'default'" in str(result.exception)
    other = reference_file(tmp_path / "s.json", str(tiny_decoder), scores, sampling=SamplingConfig(samples=8))
    with pytest.raises(ConfigError, match=r"sampled with other settings \(max_new_tokens=32 there, 3 here, samples"):
        ReferenceScores.load(other).check_comparable(str(tiny_decoder), SAMPLING)


def test_files_that_are_not_reference_scores_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no reference scores at .*generate-eval's out"):
        ReferenceScores.load(tmp_path / "missing.json")
    (tmp_path / "summary.json").write_text(json.dumps({"model": "m", "sampling": {}, "estimators": {}}))
    with pytest.raises(DataError, match="holds no per-question scores .*'records'"):
        ReferenceScores.load(tmp_path / "summary.json")
    (tmp_path / "empty.json").write_text(json.dumps({"model": "m", "sampling": {}, "records": []}))
    with pytest.raises(DataError, match="no reference questions"):
        ReferenceScores.load(tmp_path / "empty.json")


def test_percentiles_count_ties_half_and_skip_what_was_not_scored():
    ref = ReferenceScores("r", "m", {}, {"msp": np.array([1.0, 2.0, 2.0, 3.0])}, {})
    assert ref.percentile("msp", 2.0) == 50.0 and ref.percentile("msp", 0.0) == 0.0 and ref.percentile("msp", 9) == 100
    assert ref.percentile("perplexity", 1.0) is None and ref.percentile("msp", float("nan")) is None
    result = {"answer": "a " * 80, "uncertainty": {"perplexity": 0.5}, "decision": None}
    line = verdict(result, reference=ref)  # nothing to compare: back to the headline score, no hint
    assert line == f"answer: {('a ' * 29 + 'a…')!r} · headline score perplexity = 0.5 (higher = more uncertain)"
    assert headline({"p_true": 1.0, "msp": 2.0}) == "p_true" and headline({"msp": 1, "perplexity": 2}) == "perplexity"


def test_reference_scores_written_when_perplexity_was_the_mean_nll_are_read_as_mean_nll(tmp_path):
    """Files without scores_version come from when ``perplexity`` was the mean NLL: that is ``mean_nll`` now, and
    ``perplexity`` is exp of it, with the same ranking (percentiles) and AUROC."""
    nll = [0.2, 0.5, 0.9, 1.4]
    old = ReferenceScores.load(
        reference_file(tmp_path / "old.json", "m", {"perplexity": nll}, version=1, auroc={"perplexity": 0.7})
    )
    np.testing.assert_allclose(old.scores["mean_nll"], nll)
    np.testing.assert_allclose(old.scores["perplexity"], np.exp(nll))
    assert old.auroc == {"mean_nll": 0.7, "perplexity": 0.7}
    assert old.percentile("mean_nll", 0.6) == old.percentile("perplexity", float(np.exp(0.6))) == 50.0
    new = ReferenceScores.load(reference_file(tmp_path / "new.json", "m", {"perplexity": list(np.exp(nll))}))
    assert set(new.scores) == {"perplexity"} and new.percentile("perplexity", float(np.exp(0.6))) == 50.0
