"""Sampling: one generate call per prompt, exact token statistics, greedy row, cache and seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caveat.errors import ConfigError, DataError
from caveat.generate.sampling import Generation, SampleCache, Sampler, SamplingConfig


def _teacher_forced(lm, prompt_ids: list[int], answer: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Log-prob of each answer token and the next-token entropy, from one plain forward pass."""
    ids = torch.tensor([prompt_ids + answer])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(ids).logits[0].double(), -1)  # (L + T, V)
    steps = logp[len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(answer)]  # (T, V)
    chosen = steps[torch.arange(len(answer)), torch.tensor(answer)]
    entropy = -(steps.exp() * steps).sum(-1)
    return chosen.numpy(), entropy.numpy()


def test_statistics_equal_a_teacher_forced_forward_pass(tiny_lm):
    sampler = Sampler(tiny_lm, SamplingConfig(samples=3, max_new_tokens=7, seed=3))
    prompt = "the cat is in the house"
    g = sampler(prompt)
    ids = tiny_lm.encode(prompt)
    for answer in [g.greedy, *g.samples]:
        assert len(answer.tokens) == len(answer.logprobs) == len(answer.entropies) >= 1
        logprobs, entropies = _teacher_forced(tiny_lm, ids, answer.tokens)
        np.testing.assert_allclose(answer.logprobs, logprobs, atol=1e-4)
        np.testing.assert_allclose(answer.entropies, entropies, atol=1e-4)


def test_greedy_row_is_the_models_greedy_answer(tiny_lm):
    prompt = "my dog and your cat"
    g = Sampler(tiny_lm, SamplingConfig(samples=4, max_new_tokens=6))(prompt)
    ids = torch.tensor([tiny_lm.encode(prompt)])
    with torch.no_grad():
        ref = tiny_lm.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=tiny_lm.tokenizer.pad_token_id,
        )
    assert g.greedy.tokens == ref[0, ids.shape[1] :].tolist()[: len(g.greedy.tokens)]
    # samples from a random model differ from the greedy answer and from one another
    assert len({tuple(s.tokens) for s in g.samples}) > 1


def test_one_generate_call_per_prompt_and_none_on_a_second_request(tiny_lm, monkeypatch):
    calls = []
    real = tiny_lm.model.generate
    monkeypatch.setattr(tiny_lm.model, "generate", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    sampler = Sampler(tiny_lm, SamplingConfig(samples=5, max_new_tokens=4))
    first = sampler("the tree")
    again = sampler("the tree")
    assert again is first
    assert sampler.generate_calls == 1 and len(calls) == 1
    assert calls[0][0] == 6  # greedy + 5 samples in one batch


def test_cache_round_trip_and_no_regeneration(tiny_lm, tmp_path):
    cfg = SamplingConfig(samples=3, max_new_tokens=5, seed=1)
    cache = SampleCache(tmp_path / "cache")
    first = Sampler(tiny_lm, cfg, cache=cache)("the road")
    second_sampler = Sampler(tiny_lm, cfg, cache=cache)
    second = second_sampler("the road")
    assert second_sampler.generate_calls == 0 and second.cached
    assert second.greedy.tokens == first.greedy.tokens
    assert [s.text for s in second.samples] == [s.text for s in first.samples]
    np.testing.assert_allclose(second.samples[1].logprobs, first.samples[1].logprobs)
    # other settings, other key
    assert SampleCache.key("m", "p", cfg) != SampleCache.key(
        "m", "p", SamplingConfig(samples=3, max_new_tokens=5, seed=2)
    )


def test_unreadable_cache_file_names_the_fix(tiny_lm, tmp_path):
    cfg = SamplingConfig(samples=1, max_new_tokens=2)
    cache = SampleCache(tmp_path)
    key = SampleCache.key(tiny_lm.name, "the cat", cfg)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(DataError, match="delete it"):
        Sampler(tiny_lm, cfg, cache=cache)("the cat")


def test_samples_do_not_depend_on_order_and_follow_the_seed(tiny_lm):
    cfg = SamplingConfig(samples=4, max_new_tokens=5, seed=7)
    a = Sampler(tiny_lm, cfg)
    a("the city")
    x = a("my phone")
    y = Sampler(tiny_lm, cfg)("my phone")
    assert [s.tokens for s in x.samples] == [s.tokens for s in y.samples]
    z = Sampler(tiny_lm, SamplingConfig(samples=4, max_new_tokens=5, seed=8))("my phone")
    assert [s.tokens for s in z.samples] != [s.tokens for s in x.samples]


def test_answers_stop_at_eos_and_record_it(tiny_lm, monkeypatch):
    sampler = Sampler(tiny_lm, SamplingConfig(samples=0, max_new_tokens=5))
    eos = tiny_lm.tokenizer.eos_token_id
    answer = sampler._answer([5, 6, eos, 0, 0], np.array([-1.0, -2, -3, 0, 0]), np.ones(5))
    assert answer.tokens == [5, 6, eos] and answer.finished
    np.testing.assert_allclose(answer.logprobs, [-1, -2, -3])
    cut = sampler._answer([5, 6, 7], np.zeros(3), np.ones(3))
    assert not cut.finished and len(cut.tokens) == 3


def test_generation_json_round_trip(tiny_lm):
    g = Sampler(tiny_lm, SamplingConfig(samples=2, max_new_tokens=3))("the cat")
    back = Generation.from_dict(g.to_dict())
    assert back.greedy.text == g.greedy.text and back.samples[1].tokens == g.samples[1].tokens


def test_chat_models_get_their_template(tiny_chat_lm):
    assert tiny_chat_lm.chat
    assert tiny_chat_lm.prompt("the cat ?") == "<s> user : the cat ? </s> <s> assistant : "
    g = Sampler(tiny_chat_lm, SamplingConfig(samples=1, max_new_tokens=3))(tiny_chat_lm.prompt("the cat ?"))
    assert g.greedy.tokens


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"samples": -1}, "samples must be >= 0"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -2}, "top_k"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SamplingConfig(**kwargs)


def test_missing_local_model_folder_is_named(tmp_path):
    from caveat.generate.lm import load_lm

    with pytest.raises(ConfigError, match="no such folder"):
        load_lm(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without config.json"):
        load_lm(str(tmp_path / "empty"))
