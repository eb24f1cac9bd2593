"""Single-pass estimators on a tiny decoder: internals kept from the generate call, RAUQ by hand, generate-fit."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.generate import prompts
from caveat.generate.data import Question
from caveat.generate.estimators import Context, get_estimator
from caveat.generate.lm import load_lm
from caveat.generate.probes import ProbeSet
from caveat.generate.rauq import rauq, rauq_per_layer
from caveat.generate.sampling import Sampler, SamplingConfig

PROMPTS = ["alpha beta gamma", "alice and bob", "paris is in", "rome smith", "the cat is in the house"]


@pytest.fixture(scope="module")
def decoder(tiny_decoder):
    return load_lm(str(tiny_decoder))


def _forward(lm, ids: list[int]):
    """Log-probs, attentions and hidden states of one plain forward pass with eager attention."""
    before = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = lm.model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    finally:
        lm.model.set_attn_implementation(before)
    return torch.log_softmax(out.logits[0].double(), -1), out.attentions, out.hidden_states


def _rauq_by_hand(lm, prompt_ids, tokens, layers, alpha=0.2):
    logp, attentions, _ = _forward(lm, prompt_ids + tokens)
    n_prompt, t = len(prompt_ids), len(tokens)
    n = max(t - 1, 1)
    p = [math.exp(logp[n_prompt + i - 2, tokens[i - 1]]) for i in range(1, n + 1)]  # p(y_1) .. p(y_N)

    def attention(layer, head, i):  # from y_i (position n_prompt + i - 1) to y_{i-1}
        return float(attentions[layer][0, head, n_prompt + i - 1, n_prompt + i - 2])

    scores = []
    for layer in layers:
        heads = attentions[layer].shape[1]
        head = max(range(heads), key=lambda h: np.mean([attention(layer, h, i) for i in range(2, n + 1)] or [0]))
        c, logs = p[0], [math.log(p[0])]
        for i in range(2, n + 1):
            c = alpha * p[i - 1] + (1 - alpha) * attention(layer, head, i) * c
            logs.append(math.log(c))
        scores.append(-sum(logs) / n)
    return max(scores)


def test_internals_come_from_the_one_generate_call_and_equal_a_forward_pass(decoder, monkeypatch):
    calls = []
    real = decoder.model.generate
    monkeypatch.setattr(decoder.model, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    sampler = Sampler(decoder, SamplingConfig(samples=2, max_new_tokens=6), internals={"attentions", "hidden_states"})
    for prompt in PROMPTS:
        g = sampler(prompt)
        ids, tokens = decoder.encode(prompt), g.greedy.tokens
        t = len(tokens)
        _, attentions, hidden = _forward(decoder, ids + tokens)
        rows = range(len(ids) - 1, len(ids) - 1 + t)  # last prompt token, then y_1 .. y_{T-1}
        expected_h = np.stack([[h[0, r].numpy() for h in hidden] for r in rows])  # (T, L + 1, D)
        np.testing.assert_allclose(g.extra["hidden_states"], expected_h, atol=1e-4)
        expected_a = np.stack([[a[0, :, r, r - 1].numpy() for a in attentions] for r in rows])  # (T, L, H)
        np.testing.assert_allclose(g.extra["prev_attention"], expected_a, atol=1e-5)
    assert len(calls) == len(PROMPTS)  # no second pass for the internals
    assert decoder.model.config._attn_implementation != "eager"  # switched back after the call


def test_rauq_equals_its_recurrence_computed_by_hand(decoder):
    sampler = Sampler(decoder, SamplingConfig(samples=0, max_new_tokens=8), internals={"attentions"})
    lengths = []
    for prompt in PROMPTS:
        g = sampler(prompt)
        ids, tokens = decoder.encode(prompt), g.greedy.tokens
        lengths.append(len(tokens))
        assert rauq(g.greedy.logprobs, g.extra["prev_attention"], layers=[0, 1]) == pytest.approx(
            _rauq_by_hand(decoder, ids, tokens, [0, 1]), rel=1e-5
        )
        # the registered estimator: alpha 0.2 over the middle third of layers (layer 0 of 2)
        assert get_estimator("rauq").fn(g, Context(), "") == pytest.approx(
            _rauq_by_hand(decoder, ids, tokens, [0]), rel=1e-5
        )
    assert max(lengths) >= 4  # the recurrence really ran over several tokens


def test_rauq_on_planted_attention_and_probabilities():
    logprobs = np.log([0.9, 0.5, 0.8, 0.3])  # T = 4, so N = 3
    attention = np.zeros((4, 1, 2))
    attention[:, 0, 1] = 0.6  # head 1 attends more to the previous token: it is chosen
    attention[:, 0, 0] = 0.1
    c1 = 0.9
    c2 = 0.2 * 0.5 + 0.8 * 0.6 * c1
    c3 = 0.2 * 0.8 + 0.8 * 0.6 * c2
    expected = -(math.log(c1) + math.log(c2) + math.log(c3)) / 3
    assert rauq_per_layer(logprobs, attention)[0] == pytest.approx(expected)
    assert rauq_per_layer(np.log([0.25]), np.zeros((1, 1, 2)))[0] == pytest.approx(math.log(4))


def _question_file(decoder, path):
    """NQ-open questions whose references the tiny model's greedy answers contain for half of them."""
    sampler = Sampler(decoder, SamplingConfig(samples=0, max_new_tokens=4))
    words = ["alpha", "beta", "gamma", "alice", "bob", "smith", "paris", "rome"]
    rows = []
    for i, combo in enumerate(itertools.islice(itertools.combinations(words, 3), 16)):
        question = f"where is {' '.join(combo)} ?"
        message = prompts.message(Question(f"q{i}", question, ("x",)))
        answer = sampler(decoder.prompt(message)).greedy.text
        right = answer.split() and i % 2 == 0
        rows.append({"question": question, "answer": [answer.split()[0] if right else "zzz-never"]})
    path.write_text("\n".join(json.dumps(r) for r in rows))


def test_cli_generate_fit_then_eval_with_the_fitted_probes(decoder, tiny_decoder, tmp_path):
    data = tmp_path / "questions.jsonl"
    _question_file(decoder, data)
    runner = CliRunner()
    common = ["--lm", str(tiny_decoder), "--max-new-tokens", "4"]
    r = runner.invoke(
        app,
        ["generate-fit", "--data", str(data), "--samples", "0", "--out", str(tmp_path / "probe"), "--folds", "2"]
        + common,
    )
    assert r.exit_code == 0, r.output + str(r.exception)
    summary = json.loads(r.stdout)
    assert summary["n"] == 16 and 0 < summary["error_rate"] < 1 and "semantic_entropy" not in summary
    saved = json.loads((tmp_path / "probe" / "probes.json").read_text())
    assert set(saved["probes"]) == {"correctness", "mahalanobis", "rde", "stacked"}
    assert saved["model"] == str(tiny_decoder)
    assert saved["probes"]["stacked"]["inputs"] == ["msp", "mean_nll", "mean_token_entropy"]
    assert (tmp_path / "probe" / "correctness.safetensors").is_file()
    r = runner.invoke(
        app,
        [
            "generate-eval",
            "--data",
            str(data),
            "--samples",
            "0",
            "--estimators",
            f"probe:{tmp_path / 'probe'},stacked:{tmp_path / 'probe'},mahalanobis:{tmp_path / 'probe'},"
            f"rde:{tmp_path / 'probe'},rauq,msp,mean_nll,mean_token_entropy",
            "--n-boot",
            "10",
            "--out",
            str(tmp_path / "eval.json"),
        ]
        + common,
    )
    assert r.exit_code == 0, r.output + str(r.exception)
    full = json.loads((tmp_path / "eval.json").read_text())
    assert full["generate_calls"] == 16  # one call per question, internals included
    scores = full["records"][0]["scores"]
    probe, stacked = f"probe:{tmp_path / 'probe'}", f"stacked:{tmp_path / 'probe'}"
    assert set(scores) == {
        probe,
        stacked,
        f"mahalanobis:{tmp_path / 'probe'}",
        f"rde:{tmp_path / 'probe'}",
        "rauq",
        "msp",
        "mean_nll",
        "mean_token_entropy",
    }
    assert 0 <= scores[probe] <= 1 and 0 <= scores[stacked] <= 1 and scores["rauq"] > 0
    # the stacked score equals the saved second regression applied by hand to the probe's log-odds and the
    # answer's own msp, mean NLL and mean token entropy
    probes = ProbeSet.load(tmp_path / "probe")
    row = np.array(
        [
            [
                math.log(scores[probe] / (1 - scores[probe])),
                scores["msp"],
                scores["mean_nll"],
                scores["mean_token_entropy"],
            ]
        ]
    )
    assert probes.scorers["stacked"].score(row)[0] == pytest.approx(scores[stacked], rel=1e-9)
