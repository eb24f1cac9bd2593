"""Sampling temperature and meaning threshold tuned on half the questions, judged on the other half."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.errors import ConfigError, DataError
from caveat.generate import prompts
from caveat.generate.data import Question
from caveat.generate.sampling import Answer, Generation, Sampler, SamplingConfig
from caveat.generate.tune import DEFAULT, tune_on_generations, tune_sampling


class PlantedEncoder:
    """'paris' and 'in paris' have cosine 0.85 (one meaning at threshold 0.8, two at 0.9); 'lyon' is orthogonal."""

    def encode(self, texts):
        rows = {"paris": [1.0, 0.0, 0.0], "in paris": [0.85, np.sqrt(1 - 0.85**2), 0.0], "lyon": [0.0, 0.0, 1.0]}
        return np.array([rows[t] for t in texts])


def _answer(text: str) -> Answer:
    return Answer(text, [0, 1], np.array([-0.5, -0.5]), np.ones(2), True)


def planted(n: int = 120, seed: int = 0):
    """Half the greedy answers wrong. At temperature 1.0 a right answer's samples are paraphrases ('paris' /
    'in paris', one meaning only at threshold 0.8) and a wrong answer's samples disagree ('paris' / 'lyon'); at
    0.3 and 0.5 every sample repeats the greedy answer, so the samples carry no signal there. The best pair is
    (1.0, 0.8); the default (0.5, 0.9) has AUROC 0.5."""
    rng = np.random.default_rng(seed)
    errors = rng.permutation(np.arange(n) % 2 == 1)
    gens = {0.3: [], 0.5: [], 1.0: []}
    for wrong in errors:
        k = int(rng.integers(2, 7))  # how many of 8 samples take the second form
        second = "lyon" if wrong else "in paris"
        for t in (0.3, 0.5):
            gens[t].append(Generation("p", _answer("paris"), [_answer("paris")] * 8, 0.0))
        gens[1.0].append(Generation("p", _answer("paris"), [_answer("paris")] * (8 - k) + [_answer(second)] * k, 0.0))
    return gens, errors


def test_the_planted_best_pair_is_chosen_and_beats_the_default_on_held_out_questions():
    gens, errors = planted()
    out = tune_on_generations(gens, errors, estimator="semantic_entropy", thresholds=[0.8, 0.9],
                              encoder=PlantedEncoder(), n_boot=200)  # fmt: skip
    assert (out["temperature"], out["meaning_threshold"]) == (1.0, 0.8)
    held = out["held_out"]
    assert held["chosen_auroc"] == pytest.approx(1.0) and held["default_auroc"] == pytest.approx(0.5)
    assert held["difference"] == pytest.approx(0.5) and held["difference_interval"][0] > 0.3
    assert out["n_tuning"] + out["n_held_out"] == 120 and out["use"] == "--temperature 1 --meaning-threshold 0.8"
    assert len(out["grid"]) == 6 and out["grid"][0]["auroc_tuning"] == pytest.approx(1.0)
    # at 0.9 'in paris' is a second meaning, so right answers look as uncertain as wrong ones
    at_09 = next(r for r in out["grid"] if (r["temperature"], r["meaning_threshold"]) == (1.0, 0.9))
    assert at_09["auroc_tuning"] < 0.75


def test_an_estimator_without_meaning_clusters_tunes_the_temperature_only():
    gens, errors = planted()
    out = tune_on_generations(gens, errors, estimator="lexical_similarity", thresholds=[0.8, 0.9],
                              encoder=PlantedEncoder(), n_boot=50)  # fmt: skip
    assert out["temperature"] == 1.0 and out["meaning_threshold"] is None and not out["threshold_used"]
    assert len(out["grid"]) == 3 and out["use"] == "--temperature 1"


def test_bad_grids_and_estimators_are_refused(tiny_lm):
    qs = [Question(f"q{i}", "where is the cat ?", ("the",), None) for i in range(20)]
    with pytest.raises(ConfigError, match="reads only the greedy answer"):
        tune_sampling(qs, tiny_lm, estimator="msp")
    with pytest.raises(ConfigError, match="must lie in"):
        tune_sampling(qs, tiny_lm, thresholds=[0.9, 1.5])
    with pytest.raises(ConfigError, match="repeats"):
        tune_sampling(qs, tiny_lm, temperatures=[0.7, 0.7])
    with pytest.raises(DataError, match="at least 20"):
        tune_sampling(qs[:10], tiny_lm)
    gens, errors = planted()
    with pytest.raises(ConfigError, match="default pair"):
        tune_on_generations({1.0: gens[1.0]}, errors, estimator="semantic_entropy", thresholds=[0.9])
    with pytest.raises(DataError, match="all right"):
        tune_on_generations(gens, np.zeros(120, bool), estimator="semantic_entropy", thresholds=[0.9],
                            encoder=PlantedEncoder())  # fmt: skip


def test_cli_generate_tune_end_to_end_on_a_tiny_lm(tiny_lm, tiny_lm_dir, tmp_path):
    """Generates at every temperature (the default's added), judges the greedy answers once (half planted right),
    and writes a choice that is a grid point."""
    words = ["cat", "dog", "tree", "city", "road", "house"]
    qs = [Question(f"q{i}", f"where is the {words[i % 6]} number {i} ?", ("zzz",), None) for i in range(20)]
    greedy = Sampler(tiny_lm, SamplingConfig(samples=0, max_new_tokens=3))
    answers = [greedy(tiny_lm.prompt(prompts.message(q))).greedy.text for q in qs]
    lines = [{"question": q.question, "answer": [answers[i] if i % 2 else "zzz"]} for i, q in enumerate(qs)]
    data = tmp_path / "nq.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in lines))
    args = [
        "generate-tune",
        "--data",
        str(data),
        "--lm",
        str(tiny_lm_dir),
        "--temperatures",
        "1.0",
        "--thresholds",
        "0.8",
        "--samples",
        "3",
        "--max-new-tokens",
        "3",
        "--out",
        str(tmp_path / "t.json"),
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "t.json").read_text())
    assert {r["temperature"] for r in out["grid"]} == {DEFAULT[0], 1.0}
    assert {r["meaning_threshold"] for r in out["grid"]} == {0.8, DEFAULT[1]}
    grid = {(r["temperature"], r["meaning_threshold"]) for r in out["grid"]}
    assert (out["temperature"], out["meaning_threshold"]) in grid and len(grid) == 4
    assert out["samples"] == 3 and out["accuracy"] == pytest.approx(0.5) and out["data"] == str(data)
    bad = CliRunner().invoke(app, [*args[:5], "--temperatures", "0.5,hot"])
    assert isinstance(bad.exception, ConfigError) and "comma-separated numbers" in str(bad.exception)
