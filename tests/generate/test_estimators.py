"""Estimators equal hand-computed values from recorded statistics; meaning clusters from planted texts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.generate.estimators import ESTIMATORS, Context, parse_estimators, rouge_l
from caveat.generate.sampling import Answer, Generation, Sampler, SamplingConfig
from caveat.generate.semantic import EmbeddingEquivalence, cluster, meanings


class FakeEncoder:
    """Planted embeddings: texts in one group point the same way; counts calls."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups, self.calls = groups, []

    def encode(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 8))
        for i, t in enumerate(texts):
            out[i, self.groups[t]] = 1.0
        return out


def _answer(text: str, logprobs, entropies=None) -> Answer:
    lp = np.asarray(logprobs, dtype=float)
    ent = np.asarray(entropies if entropies is not None else np.ones(len(lp)), dtype=float)
    return Answer(text, list(range(len(lp))), lp, ent, True)


@pytest.fixture
def planted():
    """Greedy 'Paris' and 5 samples: three say Paris in some way, one Lyon, one Rome."""
    greedy = _answer("Paris", [-0.1, -0.3], [0.5, 1.5])
    samples = [
        _answer("Paris", [-0.2, -0.2]),
        _answer("It is Paris", [-1.0, -0.5, -0.3, -0.2]),
        _answer("Lyon", [-2.0, -0.1]),
        _answer("the city of Paris", [-0.4, -0.4, -0.4, -0.4, -0.4]),
        _answer("Rome", [-3.0, -1.0]),
    ]
    g = Generation("prompt", greedy, samples, 0.0)
    enc = FakeEncoder({"Paris": 0, "It is Paris": 0, "the city of Paris": 0, "Lyon": 1, "Rome": 2})
    return g, Context(equivalence=EmbeddingEquivalence(0.9, encoder=enc)), enc


def value(name, g, ctx, message="q"):
    return ESTIMATORS.get(name).fn(g, ctx, message)


def test_token_statistics_estimators(planted):
    g, ctx, _ = planted
    assert value("msp", g, ctx) == pytest.approx(0.4)  # -log P(answer): the maximum sequence probability
    assert value("mean_nll", g, ctx) == pytest.approx(0.2)  # per token: (0.1 + 0.3) / 2
    assert value("perplexity", g, ctx) == pytest.approx(math.exp(0.2))
    assert value("mean_token_entropy", g, ctx) == pytest.approx(1.0)


def test_perplexity_is_exp_of_the_mean_nll(planted):
    """The perplexity is a perplexity (>= 1), exp of the per-token NLL, and so ranks answers as the mean NLL
    (lm-polygraph's Perplexity) does."""
    g, ctx, _ = planted
    answers = [g.greedy, *g.samples]
    nll = [value("mean_nll", Generation("prompt", a, [], 0.0), ctx) for a in answers]
    ppl = [value("perplexity", Generation("prompt", a, [], 0.0), ctx) for a in answers]
    np.testing.assert_allclose(ppl, np.exp(nll))
    assert min(ppl) >= 1.0 and np.array_equal(np.argsort(ppl), np.argsort(nll))
    empty = Generation("prompt", _answer("", []), [], 0.0)
    assert value("mean_nll", empty, ctx) == 0.0 and value("perplexity", empty, ctx) == 1.0
    assert "maximum sequence probability" in ESTIMATORS.get("msp").summary


def test_meaning_clusters_group_paraphrases_and_separate_contradictions(planted):
    g, ctx, enc = planted
    m = ctx.meanings(g)
    np.testing.assert_array_equal(m.sample_labels, [0, 0, 1, 0, 2])
    assert m.greedy_label == 0 and m.n_clusters == 3
    ctx.meanings(g)
    assert len(enc.calls) == 1  # computed once, shared by every estimator
    assert enc.calls[0] == ["Paris", "It is Paris", "Lyon", "the city of Paris", "Rome"]  # distinct texts only


def test_semantic_estimators_equal_hand_computed_values(planted):
    g, ctx, _ = planted
    # sample probabilities exp(mean log p): Paris e^-0.2, It is Paris e^-0.5, Lyon e^-1.05, city e^-0.4, Rome e^-2
    w = np.exp([-0.2, -0.5, -1.05, -0.4, -2.0])
    p = np.array([w[0] + w[1] + w[3], w[2], w[4]]) / w.sum()
    assert value("semantic_entropy", g, ctx) == pytest.approx(-(p * np.log(p)).sum())
    q = np.array([3, 1, 1]) / 5
    assert value("discrete_semantic_entropy", g, ctx) == pytest.approx(-(q * np.log(q)).sum())
    assert value("num_semantic_sets", g, ctx) == 3
    assert value("self_consistency", g, ctx) == pytest.approx(1 - 3 / 5)


def test_one_meaning_gives_zero_entropy_and_full_consistency():
    same = [_answer("Darwin", [-0.5]), _answer("darwin.", [-0.1]), _answer("The Darwin", [-2.0])]
    g = Generation("p", _answer("Darwin", [-0.3]), same, 0.0)
    enc = FakeEncoder({})  # never called: the texts are equal after normalisation
    ctx = Context(equivalence=EmbeddingEquivalence(0.9, encoder=enc))
    assert value("semantic_entropy", g, ctx) == pytest.approx(0.0)
    assert value("self_consistency", g, ctx) == 0.0
    assert enc.calls == []


def test_greedy_meaning_none_of_the_samples_is_fully_inconsistent():
    g = Generation("p", _answer("Berlin", [-0.3]), [_answer("Rome", [-1]), _answer("Lyon", [-1])], 0.0)
    ctx = Context(equivalence=EmbeddingEquivalence(0.9, encoder=FakeEncoder({"Berlin": 3, "Rome": 1, "Lyon": 2})))
    assert value("self_consistency", g, ctx) == 1.0
    assert ctx.meanings(g).n_clusters == 2  # the greedy answer opens no cluster


def test_lexical_similarity_and_rouge_l():
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    # LCS("a b c d", "a c e") = 2 -> P = 2/4, R = 2/3
    assert rouge_l("a b c d", "a c e") == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert rouge_l("", "x") == 0.0 and rouge_l("Paris!", "paris") == 1.0
    texts = ["a b", "a b", "c"]
    g = Generation("p", _answer("a b", [-1]), [_answer(t, [-1]) for t in texts], 0.0)
    sims = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # ordered pairs (0,1),(0,2),(1,0),(1,2),(2,0),(2,1)
    assert value("lexical_similarity", g, Context()) == pytest.approx(1 - np.mean(sims))


def test_sample_estimators_need_samples():
    g = Generation("p", _answer("x", [-1]), [], 0.0)
    with pytest.raises(ConfigError, match="samples >= 2"):
        value("semantic_entropy", g, Context())
    assert "semantic_entropy" not in parse_estimators(None, samples=0)
    with pytest.raises(ConfigError, match="needs sampled answers"):
        parse_estimators("msp,lexical_similarity", samples=0)
    with pytest.raises(ConfigError, match="unknown estimator 'nope'"):
        parse_estimators("msp,nope", samples=8)


def test_kuhn_clustering_is_sequential_against_cluster_heads():
    # 0~1, 1~2 but not 0~2: 2 does not join 0's cluster because it is compared with the head 0 only
    same = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(cluster(same), [0, 0, 1])
    assert meanings("a", [], EmbeddingEquivalence(0.5, encoder=FakeEncoder({"a": 0}))).n_clusters == 0


def test_p_true_is_minus_log_of_renormalised_true_probability(tiny_chat_lm):
    import torch

    g = Sampler(tiny_chat_lm, SamplingConfig(samples=0, max_new_tokens=3))(tiny_chat_lm.prompt("the cat ?"))
    ctx = Context(lm=tiny_chat_lm)
    got = value("p_true", g, ctx, "the cat ?")
    tok = tiny_chat_lm.tokenizer
    prompt = tok.apply_chat_template(
        [
            {"role": "user", "content": "the cat ?"},
            {"role": "assistant", "content": g.greedy.text},
            {"role": "user", "content": "Is your answer true or false? Reply with one word: True or False."},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    with torch.no_grad():
        logits = tiny_chat_lm.model(torch.tensor([tiny_chat_lm.encode(prompt)])).logits[0, -1].double()
    t, f = logits[tok.convert_tokens_to_ids("True")], logits[tok.convert_tokens_to_ids("False")]
    assert got == pytest.approx(float(-(t - torch.logaddexp(t, f))), abs=1e-5)
    assert ctx.lm_calls == 1


def test_verbalised_reads_the_stated_number(tiny_lm, monkeypatch):
    import torch

    g = Generation("p", _answer("x", [-1]), [], 0.0)
    ctx = Context(lm=tiny_lm)
    monkeypatch.setattr(
        tiny_lm.model,
        "generate",
        lambda input_ids, *a, **k: torch.cat([input_ids, torch.zeros(1, 1, dtype=torch.long)], 1),
    )
    for reply, expected in [("i am 80 sure", 0.2), ("no idea", 1.0), ("250", 1.0), ("37.5", 0.625)]:
        monkeypatch.setattr(tiny_lm.tokenizer, "decode", lambda *a, reply=reply, **k: reply)
        assert value("verbalised", g, ctx, "q") == pytest.approx(expected)
    assert ctx.lm_calls == 4


def test_lm_estimators_name_the_missing_model(tiny_lm):
    g = Generation("p", _answer("x", [-1]), [], 0.0)
    with pytest.raises(ConfigError, match="give the Context an lm"):
        value("p_true", g, Context())
    with pytest.raises(ConfigError, match="cannot tell 'True' from 'False'"):
        value("p_true", g, Context(lm=tiny_lm))  # its vocabulary has only lower-case true/false
    assert not math.isnan(value("msp", g, Context()))


def test_entailment_equivalence_is_bidirectional_and_puts_the_question_first():
    import torch

    from caveat.generate.semantic import EntailmentEquivalence

    seen = []

    class Tok:
        def __call__(self, premises, hypotheses, **kwargs):
            seen.extend(zip(premises, hypotheses))
            return {"pairs": list(zip(premises, hypotheses))}

    class Model:
        def __call__(self, pairs):
            # planted NLI: "paris" entails "in paris", "in paris" entails "paris"; "france" entails "paris" only one way
            rules = {("paris", "in paris"), ("in paris", "paris"), ("france", "paris")}

            def strip(t):
                return t.split("? ", 1)[1]

            logits = [[0.0, 1.0, 0.0] if (strip(p), strip(h)) in rules else [1.0, 0.0, 0.0] for p, h in pairs]
            return type("Out", (), {"logits": torch.tensor(logits)})()

    nli = EntailmentEquivalence.__new__(EntailmentEquivalence)
    nli.tokenizer, nli.model, nli.entailment, nli.batch_size = Tok(), Model(), 1, 4
    same = nli.matrix(["paris", "in paris", "france"], question="where ?")
    np.testing.assert_array_equal(same, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert seen[0] == ("where ? paris", "where ? in paris") and len(seen) == 6
