"""POST /v1/generate on a tiny random causal LM: the same answer as ``caveat generate``, a policy's decision
at a planted threshold, and 4xx bodies that say what to change."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from caveat.errors import ConfigError
from caveat.generate.answer import answer_question, ask
from caveat.generate.estimators import Context
from caveat.generate.policy import GenerationPolicy
from caveat.generate.sampling import SamplingConfig
from caveat.service import ServiceSettings, create_app
from caveat.service.validation import default_estimators
from tests.fakes import DistinctEncoder
from tests.service.conftest import metric, serving

QUESTION = "where is my parcel"
SAMPLING = SamplingConfig(samples=2, max_new_tokens=3)


@pytest.fixture(scope="module", autouse=True)
def no_minilm():
    """Keep the test models tiny: meaning clusters come from planted embeddings."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("caveat.robustness.similarity.SentenceEncoder", DistinctEncoder)
        yield


def generation_ready(client, timeout: float = 60.0):
    """The client, once /readyz says the language model is loaded."""
    deadline = time.monotonic() + timeout
    while (status := client.get("/readyz").json()["generation"]) != "ready":
        assert time.monotonic() < deadline and "failed" not in status, status
        time.sleep(0.02)
    return client


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_dir):
    from caveat.generate.lm import load_lm

    return load_lm(str(tiny_lm_dir))


@pytest.fixture(scope="module")
def direct(tiny_lm):
    """What caveat generate answers (the same function) for QUESTION under SAMPLING."""
    return answer_question(tiny_lm, SAMPLING, ask(QUESTION), ["msp"], Context(lm=tiny_lm))


@pytest.fixture(scope="module")
def lm_client(served_run, tiny_lm_dir):
    with serving(
        served_run,
        lm=str(tiny_lm_dir),
        torch_threads=1,
        max_question_chars=40,
        max_generate_samples=4,
        max_generate_tokens=4,
    ) as client:
        yield generation_ready(client)


def planted_policy(path, lm_dir, cut: float) -> GenerationPolicy:
    """A policy calibrated on 400 msp scores in [0, 2 cut], wrong exactly above ``cut``: its threshold lies
    just above the cut (the selective risk grows past 5% soon after it)."""
    scores = np.linspace(0, 2 * cut, 400)
    policy = GenerationPolicy.fit(
        scores,
        scores > cut,
        lm=str(lm_dir),
        sampling=SAMPLING,
        estimator="msp",
        rule="contains",
        target_risk=0.05,
        delta=0.1,
    )
    assert cut <= policy.risk.threshold <= 1.2 * cut  # the planted cut is recovered
    policy.save(path)
    return policy


def test_an_answer_with_its_uncertainty_and_no_decision(lm_client, tiny_lm_dir, direct):
    r = lm_client.post("/v1/generate", json={"question": QUESTION, "samples": 2, "max_new_tokens": 3})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["model"] == str(tiny_lm_dir)
    assert (body["answer"], body["samples"]) == (direct["answer"], direct["samples"])  # the CLI's answer
    assert list(body["uncertainty"]) == default_estimators(2)  # all but p_true and verbalised
    assert body["uncertainty"]["msp"] == pytest.approx(direct["uncertainty"]["msp"], rel=1e-5)
    assert body["uncertainty"]["num_semantic_sets"] == len(set(direct["samples"]))  # distinct texts, distinct meanings
    assert body["decision"] is None and body["estimator"] is None
    assert "caveat generate-calibrate" in body["reason"] and "--generation-policy" in body["reason"]
    assert body["seconds"] >= 0


def test_estimators_by_name(lm_client, direct):
    r = lm_client.post(
        "/v1/generate",
        json={"question": QUESTION, "samples": 2, "max_new_tokens": 3, "estimators": ["perplexity", "msp"]},
    )
    assert r.status_code == 200, r.json()
    assert list(r.json()["uncertainty"]) == ["perplexity", "msp"]
    r = lm_client.post(
        "/v1/generate", json={"question": QUESTION, "samples": 2, "max_new_tokens": 3, "estimators": ["p_true"]}
    )  # its vocabulary has only lower-case true
    assert r.status_code == 422
    assert (
        r.json()["detail"].startswith("estimators: the tokenizer of")
        and "choose other estimators" in r.json()["detail"]
    )


def hold_the_generator(client, monkeypatch):
    """A slow fake of the language model: the question "hold" waits inside the model thread until ``release``
    is set. ``asked`` lists the questions that reached the model."""
    gen = client.app.state.caveat.generator
    real, entered, release, asked = gen.answer, threading.Event(), threading.Event(), []

    def held(question, context, options):
        asked.append(question)
        if question == "hold":
            entered.set()
            assert release.wait(30)
        return real(question, context, options)

    monkeypatch.setattr(gen, "answer", held)
    return entered, release, asked


def deadline_sheds(client) -> float:
    """``caveat_requests_shed_total{reason="deadline"}`` (no sample before the first)."""
    text = client.get("/metrics").text
    return metric(text, "caveat_requests_shed_total", reason="deadline") if 'reason="deadline"' in text else 0.0


def test_a_question_past_its_deadline_is_504_and_the_service_keeps_serving(lm_client, monkeypatch):
    state, small = lm_client.app.state.caveat, {"samples": 2, "max_new_tokens": 3}
    monkeypatch.setattr(state, "settings", state.settings.model_copy(update={"request_timeout_s": 0.3}))
    shed = deadline_sheds(lm_client)
    entered, release, asked = hold_the_generator(lm_client, monkeypatch)
    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(lm_client.post, "/v1/generate", json={"question": "hold", **small})
            assert entered.wait(30)
            slow = held.result()  # the service's deadline passes while the model generates
            late = lm_client.post("/v1/generate", json={"question": "late", "timeout_s": 0.2, **small})  # queued
    finally:
        release.set()
    assert slow.status_code == 504 and "deadline of 0.3 s" in slow.json()["detail"], slow.text
    assert late.status_code == 504 and "deadline of 0.2 s" in late.json()["detail"], late.text
    assert late.json()["request_id"] == late.headers["X-Request-ID"]
    after = lm_client.post("/v1/generate", json={"question": QUESTION, **small})
    assert after.status_code == 200, after.json()
    assert asked == ["hold", QUESTION]  # the late question was dropped before the model
    assert deadline_sheds(lm_client) == shed + 2
    too_long = lm_client.post("/v1/generate", json={"question": QUESTION, "timeout_s": 1})
    assert too_long.status_code == 422 and "timeout_s=1 is more than this service's limit of 0.3 s" in too_long.text


@pytest.mark.parametrize(
    "body, status, match",
    [
        (
            {"question": QUESTION, "estimators": ["msp", "nope"]},
            422,
            r"estimators: unknown estimator 'nope'; choose one of: .*msp.*semantic_entropy",
        ),
        ({"samples": 2}, 422, r"question: Field required"),
        ({"question": "  "}, 422, r"question is empty or only whitespace"),
        ({"question": "x" * 41}, 422, r"question has 41 characters, over this service's limit of 40"),
        ({"question": QUESTION, "samples": 5}, 422, r"samples=5 is more than this service's limit of 4: use 2..4"),
        ({"question": QUESTION, "samples": 1}, 422, r"samples: Input should be greater than or equal to 2"),
        ({"question": QUESTION, "max_new_tokens": 5}, 422, r"max_new_tokens=5 is more than this service's limit of 4"),
        ({"question": QUESTION, "temperature": 0.5}, 422, r"temperature: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_say_what_to_change(lm_client, body, status, match):
    r = lm_client.post("/v1/generate", json=body)
    assert r.status_code == status
    assert re.search(match, r.json()["detail"]), r.json()["detail"]


@pytest.mark.parametrize("cut_over_msp, expected", [(2.0, "answer"), (0.25, "abstain")])
def test_a_policy_decides_at_its_planted_threshold(served_run, tiny_lm_dir, direct, tmp_path, cut_over_msp, expected):
    msp = direct["uncertainty"]["msp"]
    policy = planted_policy(tmp_path / "policy.json", tiny_lm_dir, cut=cut_over_msp * msp)
    with serving(served_run, generation_policy=tmp_path / "policy.json", torch_threads=1) as client:
        r = generation_ready(client).post("/v1/generate", json={"question": QUESTION})
        assert r.status_code == 200, r.json()
        body = r.json()
        assert body["decision"] == expected == policy.decide(body["uncertainty"]["msp"])["decision"]
        assert body["reason"] == policy.decide(body["uncertainty"]["msp"])["reason"]
        assert body["estimator"] == "msp" and body["uncertainty"]["msp"] == pytest.approx(msp, rel=1e-5)
        assert len(body["samples"]) == 2  # the policy's sampling, not the service default of 8

        r = client.post("/v1/generate", json={"question": QUESTION, "samples": 4, "estimators": ["perplexity"]})
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "samples=4 differs from the generation policy's samples=2: its threshold holds "
            "only for the answers it was calibrated on; omit samples (or send 2)"
        )
        r = client.post("/v1/generate", json={"question": QUESTION, "samples": 2, "estimators": ["perplexity"]})
        assert list(r.json()["uncertainty"]) == ["perplexity", "msp"]  # the policy's estimator is always computed


def test_a_service_without_a_language_model_says_how_to_start_one(served_run):
    with serving(served_run, api_key="k3y") as client:
        assert client.get("/readyz").json()["generation"] is None
        assert client.post("/v1/generate", json={"question": QUESTION}).status_code == 401  # like every /v1 route
        r = client.post("/v1/generate", json={"question": QUESTION}, headers={"X-API-Key": "k3y"})
        assert r.status_code == 404
        assert "caveat serve RUN --lm default" in r.json()["detail"]
        assert "--generation-policy FILE" in r.json()["detail"]


def test_a_model_that_is_not_the_policys_stops_the_start_up(served_run, tiny_lm_dir, tmp_path):
    planted_policy(tmp_path / "policy.json", tiny_lm_dir, cut=1.0)
    settings = {"run_dir": served_run, "generation_policy": tmp_path / "policy.json"}
    with pytest.raises(
        ConfigError,
        match=rf"--lm 'default' is not the model the generation policy .*policy.json "
        rf"was calibrated with \('{tiny_lm_dir}'\)",
    ):
        create_app(ServiceSettings.from_env({}, lm="default", **settings))
    create_app(ServiceSettings.from_env({}, lm=f"{tiny_lm_dir}/.", **settings))  # the same folder, spelled otherwise
    with pytest.raises(
        ConfigError, match="no generation policy at .*missing.json; fit one with caveat generate-calibrate"
    ):
        create_app(ServiceSettings.from_env({}, run_dir=served_run, generation_policy=tmp_path / "missing.json"))
