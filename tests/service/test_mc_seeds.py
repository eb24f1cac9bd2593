"""Per-request MC-dropout seeds: a request's draws depend on its seed and its inputs' positions only, never on
the requests it shares a micro-batch with."""

from __future__ import annotations

import threading

import pytest

from caveat.rows import input_seed
from caveat.service.validation import request_seed
from tests.service.conftest import serving

TEXTS = ["the alpha card", "my beta parcel now", "please gamma"]
OTHERS = [["house cat dog tree road", "alpha beta"], ["gamma gamma card", "the beta", "my alpha parcel now please"]]


def _mc(client, texts, **extra):
    response = client.post("/v1/predict", json={"texts": texts, "method": "mc_dropout", "samples": 4, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_request_draws_the_same_alone_and_batched_with_others(served_run):
    with serving(served_run, max_wait_ms=300, max_batch_size=64) as c:
        alone = _mc(c, TEXTS, seed=7)
        assert alone["seed"] == 7
        state = c.app.state.caveat
        batches = state.metrics.batches.labels(kind="mc_dropout")
        before = batches._value.get()
        results: dict[int, dict] = {}
        barrier = threading.Barrier(3)

        def send(i: int, texts: list[str], **extra) -> None:
            barrier.wait()
            results[i] = _mc(c, texts, **extra)

        threads = [threading.Thread(target=send, args=(0, TEXTS), kwargs={"seed": 7})]
        threads += [threading.Thread(target=send, args=(i + 1, t), kwargs={"seed": i}) for i, t in enumerate(OTHERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert batches._value.get() - before < 3  # the three requests shared a batch (at most two with bad luck)
        batched = results[0]
        for a, b in zip(alone["predictions"], batched["predictions"]):
            assert a["mc_dropout"] == b["mc_dropout"]  # identical figures, not merely close
        # the seed matters: another seed draws other masks
        other = _mc(c, TEXTS, seed=8)
        assert any(a["mc_dropout"] != b["mc_dropout"] for a, b in zip(alone["predictions"], other["predictions"]))


def test_an_input_draws_by_its_position_not_its_neighbours(served_run):
    with serving(served_run) as c:
        full = _mc(c, TEXTS, seed=3)["predictions"]
        first = _mc(c, TEXTS[:1], seed=3)["predictions"]
        assert first[0]["mc_dropout"] == full[0]["mc_dropout"]


def test_without_a_seed_the_request_id_gives_one_and_the_response_says_which(served_run):
    with serving(served_run) as c:
        response = c.post(
            "/v1/predict",
            json={"texts": TEXTS[:1], "method": "mc_dropout", "samples": 4},
            headers={"X-Request-ID": "r-1"},
        )
        body = response.json()
        assert body["seed"] == request_seed("r-1")
        again = _mc(c, TEXTS[:1], seed=body["seed"])
        assert again["predictions"][0]["mc_dropout"] == body["predictions"][0]["mc_dropout"]
        assert "seed" not in c.post("/v1/predict", json={"texts": TEXTS[:1]}).json()


@pytest.mark.parametrize(
    "body, match",
    [
        ({"texts": ["a"], "seed": 1}, "seed=1 is only used with method='mc_dropout'"),
        ({"texts": ["a"], "method": "mc_dropout", "seed": -1}, "seed"),
        ({"texts": ["a"], "method": "mc_dropout", "seed": 2**63}, "seed"),
    ],
)
def test_bad_seeds_are_422_naming_the_field(served_run, body, match):
    with serving(served_run) as c:
        response = c.post("/v1/predict", json=body)
        assert response.status_code == 422 and match in response.text


def test_seeds_are_functions_of_their_arguments_only():
    assert input_seed(5, 2) == input_seed(5, 2) != input_seed(5, 3)
    assert 0 <= input_seed(2**63 - 1, 10**6) < 2**63
    assert request_seed("abc") == request_seed("abc") != request_seed("abd")
    assert request_seed(None) != request_seed(None)  # a counter when there is no ID
