"""Attacks read through a calibrated policy: ``caught`` and the answered error, on a planted victim and policy
(exact counts), and ``caveat attack`` on the tiny calibrated run (JSON and table; absent when uncalibrated)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.data.resolve import resolve_split
from caveat.decide.policy import Decision
from caveat.inference import Predictor
from caveat.robustness.attacks import AttackResult, AttackSetup, Constraints, build_attack
from caveat.robustness.metrics import POLICY_KEYS, policy_metrics
from caveat.robustness.run import NOT_CALIBRATED, attack_texts
from caveat.types import TextExample
from tests.robustness.conftest import BagOfWords, KeywordModel

# P(positive) = sigmoid(-2 + weights of the words present); the attack may only swap good -> fine, nice -> awful
WEIGHTS = {"good": 3.0, "great": 1.0, "nice": 3.0, "awful": -3.0}
SUBSTITUTES = {"good": ["fine"], "nice": ["awful"]}
THRESHOLD = 0.85  # the planted policy answers when the top probability is at least this

# text, label; then what the keyword model and the policy make of it, worked out by hand (logit -> top probability)
PLANTED = [
    # 2 (0.88, answered) -> "fine": -1 (negative 0.73): a success the policy withholds (caught)
    ("the movie was good and the cast was great fun", "positive"),
    # 2 (0.88, answered) -> "awful": -4 (negative 0.98): a success the policy still answers, wrongly
    ("the film was nice and the crew was great fun", "positive"),
    # -2 (negative 0.88, answered): right, nothing to swap
    ("the plot was dull and the acting was slow", "negative"),
    # -2 (negative 0.88, answered): wrong, so not attacked
    ("the plot was dull and the acting was slow again", "positive"),
    # -1 (negative 0.73, withheld): wrong, not attacked
    ("a great film", "positive"),
    # 4 (0.98, answered) -> "fine": 1 (0.73, withheld): the budget (1 word) is spent, no flip
    ("this good film is nice and fun to see", "positive"),
]


class PlantedPolicy:
    """A ``Calibration`` stand-in: answers when the top probability reaches ``threshold``, else abstains."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.calls: list[int] = []

    def decide(self, preds):
        probs = preds.mean_probs  # (N, C)
        self.calls.append(len(probs))
        action = np.where(probs.max(axis=1) >= self.threshold, "answer", "abstain")
        top = probs.argmax(axis=1)
        return probs, {}, Decision(top, np.eye(probs.shape[1], dtype=bool)[top], action, [""] * len(probs))


def expected(texts_labels, adversarial: dict[str, str]) -> dict:
    """The policy figures counted directly: the model and the policy on each text before and after the attack."""
    model = KeywordModel(WEIGHTS)
    rows = []
    for text, label in texts_labels:
        after = adversarial.get(text, text)
        (before_p,), (after_p,) = model.predict([text]).probs[0], model.predict([after]).probs[0]
        y = model.labels.index(label)
        rows.append(
            {
                "right": before_p.argmax() == y,
                "right_after": after_p.argmax() == y,
                "answered": before_p.max() >= THRESHOLD,
                "answered_after": after_p.max() >= THRESHOLD,
            }
        )
    flipped = [r for r in rows if r["right"] and not r["right_after"]]
    answered = [r for r in rows if r["answered"]]
    answered_after = [r for r in rows if r["answered_after"]]
    return {
        "caught": sum(not r["answered_after"] for r in flipped) / len(flipped),
        "answered_clean": len(answered),
        "answered_error_clean": sum(not r["right"] for r in answered) / len(answered),
        "answered_after_attack": len(answered_after),
        "answered_error_after_attack": sum(not r["right_after"] for r in answered_after) / len(answered_after),
    }


def test_planted_victim_and_policy():
    setup = AttackSetup(
        Constraints(max_change=0.2, min_similarity=0.5),
        BagOfWords(),
        word_candidates=lambda: lambda word: list(SUBSTITUTES.get(word.lower(), [])),
    )
    model, policy = KeywordModel(WEIGHTS), PlantedPolicy(THRESHOLD)
    examples = [TextExample(text=t, label=y) for t, y in PLANTED]
    kept: dict = {}
    figures = attack_texts(model, examples, [build_attack("greedy", setup)], calibration=policy, kept=kept)["greedy"]
    assert (figures["attacked"], figures["successes"]) == (4, 2)
    # each example's own decisions, worked out by hand in PLANTED's comments; the caught one is 0
    rows = kept["greedy"]
    assert [r["answered_clean"] for r in rows] == [True, True, True, True, False, True]
    assert [r["answered_after_attack"] for r in rows] == [False, True, True, True, False, False]
    assert [r["success"] and not r["answered_after_attack"] for r in rows] == [True, *[False] * 5]
    adversarial = {ex["original"]: ex["adversarial"] for ex in figures["examples"]}
    assert adversarial == {
        PLANTED[0][0]: "the movie was fine and the cast was great fun",
        PLANTED[1][0]: "the film was awful and the crew was great fun",
    }
    adversarial[PLANTED[5][0]] = "this fine film is nice and fun to see"  # changed, not flipped: not in examples
    want = expected(PLANTED, adversarial)
    assert want == {
        "caught": 0.5,
        "answered_clean": 5,
        "answered_error_clean": 0.2,
        "answered_after_attack": 3,
        "answered_error_after_attack": pytest.approx(2 / 3),
    }
    assert {k: figures[k] for k in POLICY_KEYS} == want
    # the policy decides once on the clean texts and once on the 3 texts the attack changed, never per query
    assert policy.calls == [6, 3] and sum(model.calls) > 9

    uncalibrated = attack_texts(KeywordModel(WEIGHTS), examples, [build_attack("greedy", setup)])["greedy"]
    assert not set(POLICY_KEYS) & set(uncalibrated)
    assert {k: v for k, v in uncalibrated.items() if k != "seconds" and k != "examples_per_s"} == {
        k: v for k, v in figures.items() if k not in POLICY_KEYS and k != "seconds" and k != "examples_per_s"
    }


def result(attacked: bool, success: bool) -> AttackResult:
    return AttackResult("a", "b", "pos", "pos", 0.9, "neg" if success else "pos", 0.6, attacked, success, 1, 5, 1, 1.0)


def test_policy_metrics_edge_cases():
    results = [result(True, False), result(False, False)]
    got = policy_metrics(results, np.array([False, False]), np.array([False, False]))
    assert got == {
        "caught": None,  # no success
        "answered_clean": 0,
        "answered_error_clean": None,  # nothing answered
        "answered_after_attack": 0,
        "answered_error_after_attack": None,
    }
    with pytest.raises(ValueError, match=r"answered_clean and answered_after must be \(2,\), one per result"):
        policy_metrics(results, np.array([True]), np.array([True, True]))


def attack_args(run, tiny_backbone) -> list[str]:
    return [
        "attack",
        str(run),
        "--max-examples",
        "12",
        "--max-change",
        "0.3",
        "--min-similarity",
        "0.5",
        "--similarity-model",
        str(tiny_backbone),
    ]


def test_cli_on_a_calibrated_run(served_run, tiny_backbone, tmp_path):
    run = shutil.copytree(served_run, tmp_path / "run")
    result = CliRunner().invoke(app, attack_args(run, tiny_backbone), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    figures = out["attacks"]["greedy"]
    assert out["calibrated"] is True and "note" not in out and set(POLICY_KEYS) <= set(figures)
    saved = json.loads((run / "metrics.json").read_text())["attack"]["test"]["greedy"]
    assert {k: saved[k] for k in POLICY_KEYS} == {k: figures[k] for k in POLICY_KEYS}

    # the clean figures, counted directly with the run's own predictor and policy
    predictor = Predictor.from_run(run)
    examples = resolve_split(predictor.run, "test").examples[:12]
    preds = predictor.predict([ex.text for ex in examples])
    answered = predictor.calibration.decide(preds)[2].answered
    wrong = preds.mean_probs.argmax(1) != np.array([predictor.labels.index(ex.label) for ex in examples])
    assert figures["answered_clean"] == answered.sum()
    assert figures["answered_error_clean"] == (pytest.approx(wrong[answered].mean()) if answered.any() else None)
    assert 0 <= figures["answered_after_attack"] <= 12
    if figures["successes"]:
        assert 0 <= figures["caught"] <= 1
    if 0 < figures["successes"] <= len(figures["examples"]):  # every success is listed: count the caught ones
        adv = predictor.predict([ex["adversarial"] for ex in figures["examples"]])
        assert figures["caught"] == pytest.approx(np.mean(~predictor.calibration.decide(adv)[2].answered))

    threads = torch.get_num_threads()
    try:
        args = [*attack_args(run, tiny_backbone), "--format", "table", "--torch-threads", "1"]
        table = CliRunner().invoke(app, args, catch_exceptions=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table.stdout.splitlines() if "│" in line}
    assert rows["caught: successes withheld"] == ("—" if figures["caught"] is None else f"{figures['caught']:.4f}")
    assert rows["answered, clean"] == str(figures["answered_clean"])
    assert rows["answered, after attack"] == str(figures["answered_after_attack"])


def test_uncalibrated_run_says_so(uncalibrated_run, tiny_backbone, tmp_path):
    run = shutil.copytree(uncalibrated_run, tmp_path / "run")
    result = CliRunner().invoke(app, attack_args(run, tiny_backbone), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["calibrated"] is False and out["note"] == NOT_CALIBRATED
    assert not set(POLICY_KEYS) & set(out["attacks"]["greedy"])
    table = CliRunner().invoke(app, [*attack_args(run, tiny_backbone), "--format", "table"], catch_exceptions=False)
    assert table.exit_code == 0 and "not calibrated" in table.stdout and "successes withheld" not in table.stdout
    bad = CliRunner().invoke(app, [*attack_args(run, tiny_backbone), "--format", "xml"])
    assert bad.exit_code != 0 and "--format must be json or table. Got 'xml'" in str(bad.exception)
    bad = CliRunner().invoke(app, [*attack_args(run, tiny_backbone), "--torch-threads", "0"])
    assert bad.exit_code != 0 and "--torch-threads must be >= 1. Got 0" in str(bad.exception)
