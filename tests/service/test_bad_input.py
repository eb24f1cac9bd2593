"""Bad input is a 4xx whose message names the value and the fix; never a 5xx (planted cases and fuzzing)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import serving

LIMITS = {"max_texts": 4, "max_text_chars": 50, "max_samples": 8, "max_explain_texts": 2}


@pytest.fixture(scope="module")
def client(served_run):
    with serving(served_run, **LIMITS) as c:
        yield c


@pytest.mark.parametrize(
    "body, match",
    [
        ({}, "send exactly one of texts .* or tokens"),
        ({"texts": []}, "texts is empty: send at least one text"),
        ({"texts": ["ok", "  "]}, r"texts\[1\] is empty or only whitespace: send non-empty texts"),
        ({"texts": ["a"] * 5}, "5 inputs is more than this service's limit of 4 per request: split them"),
        ({"texts": ["x" * 51]}, r"texts\[0\] has 51 characters, over this service's limit of 50: shorten it"),
        ({"texts": "alpha"}, r"texts: Input should be a valid list \(got 'alpha'\)"),
        ({"texts": ["a", 7]}, r"texts\[1\]: Input should be a valid string \(got 7\)"),
        (
            {"texts": ["a"], "method": "bayes"},
            r"method: Input should be 'deterministic' or 'mc_dropout' \(got 'bayes'\)",
        ),
        (
            {"texts": ["a"], "method": "mc_dropout", "samples": 9},
            "samples=9 is more than this service's limit of 8: use 2..8",
        ),
        (
            {"texts": ["a"], "method": "mc_dropout", "samples": 1},
            r"samples: Input should be greater than or equal to 2 \(got 1\)",
        ),
        ({"texts": ["a"], "samples": 4}, "samples=4 is only used with method='mc_dropout'"),
        ({"texts": ["a"], "k": 0}, r"k: Input should be greater than or equal to 1 \(got 0\)"),
        ({"texts": ["a"], "k": 4}, r"k=4 is more than the run's 3 labels: use 1..3"),
        ({"texts": ["a"], "k": "2"}, r"k: Input should be a valid integer \(got '2'\)"),
        ({"texts": ["a"], "explain": "yes"}, r"explain: Input should be a valid boolean \(got 'yes'\)"),
        (
            {"texts": ["a", "b", "c"], "explain": True},
            "explain=true with 3 inputs is more than this service's limit of 2",
        ),
        ({"texts": ["a"], "tokens": [["a"]]}, "send exactly one of texts .*; got both"),
        ({"tokens": [["a"]]}, "tokens are for token-classification runs; this run is text-classification: send texts"),
        ({"texts": ["a"], "temperature": 2}, r"temperature: Extra inputs are not permitted \(got 2\)"),
        ([{"texts": ["a"]}], "body: Input should be a valid dictionary .*: send a JSON object such as"),
    ],
)
def test_bad_predict_bodies_say_what_to_change(client, body, match):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    import re

    assert re.search(match, r.json()["detail"]), r.json()["detail"]


@pytest.mark.parametrize(
    "content, status, match",
    [
        (b'{"texts": ["a"', 422, "the body is not valid JSON .*: send a JSON object"),
        (b'{"texts": ["\\ud800"]}', 422, r"texts\[0\] is not valid Unicode .*: send UTF-8 text"),
        (b"", 422, "body: Field required: send a JSON object"),
        (b"x" * 300_000, 413, "request body of 300000 bytes is over this service's limit"),
        (b"[" * 5_000 + b"]" * 5_000, 400, "the body could not be parsed .*nested too deeply.*: send a JSON object"),
        (b'{"texts": ["a"], "k": 1' + b"0" * 5000 + b"}", 400, "a number too long"),
    ],
)
def test_malformed_bodies_are_4xx(client, content, status, match):
    import re

    r = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and re.search(match, r.json()["detail"]), r.text


@pytest.mark.parametrize(
    "body, match",
    [
        ({"text": ""}, "text is empty or only whitespace"),
        ({"text": "x" * 51}, "text has 51 characters, over this service's limit of 50"),
        (
            {"text": "alpha", "label": "fourth"},
            "label='fourth' is not one of the run's labels: choose one of first, second, third",
        ),
        (
            {"text": "alpha", "target": "fourth"},
            r"target='fourth' is neither 'predicted', .* labels \(first, second, third\)",
        ),
        (
            {"text": "alpha", "target": "second", "label": "third"},
            "label='third' and target='second' ask for two different",
        ),
        ({"text": "alpha", "target": "mutual_information"}, "integrated gradients cannot .*use method='occlusion'"),
        (
            {"text": "alpha", "method": "gradcam"},
            r"method: Input should be 'ig', 'shap', 'lime' or 'occlusion' \(got 'gradcam'\)",
        ),
        ({"text": "alpha", "span": "alpha"}, "span='alpha' is for token-classification runs; .*drop span"),
        ({"text": "alpha", "steps": 1}, r"steps: Input should be greater than or equal to 2 \(got 1\)"),
        ({"text": "alpha", "steps": 1001}, r"steps: Input should be less than or equal to 1000 \(got 1001\)"),
        ({"text": "alpha", "steps": 8.5}, r"steps: Input should be a valid integer \(got 8.5\)"),
        ({"text": "alpha", "method": "occlusion", "steps": 8}, "steps=8 is only used with method='ig' .*drop steps"),
        ({"text": "alpha", "method": "shap", "max_evals": 1}, r"max_evals: Input should be greater than or equal to 2"),
        (
            {"text": "alpha", "method": "lime", "samples": 10_001},
            r"samples: Input should be less than or equal to 10000",
        ),
        ({"text": "alpha", "seed": -1}, r"seed: Input should be greater than or equal to 0 \(got -1\)"),
        ({"text": "alpha", "tokens": ["alpha"]}, "send exactly one of text .*; got both"),
        ({}, "send exactly one of text .* or tokens"),
        ({"tokens": ["alpha"]}, "tokens are for token-classification runs; this run is text-classification: send text"),
        ({"texts": ["alpha"]}, r"texts: Extra inputs are not permitted"),
    ],
)
def test_bad_explain_bodies_say_what_to_change(client, body, match):
    import re

    r = client.post("/v1/explain", json=body)
    assert r.status_code == 422 and re.search(match, r.json()["detail"]), r.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "texts": st.one_of(JSON, st.lists(st.one_of(st.text(max_size=12), JSON), max_size=6)),
        "tokens": st.one_of(JSON, st.lists(st.lists(st.text(max_size=6), max_size=3), max_size=3)),
        "method": st.one_of(st.sampled_from(["deterministic", "mc_dropout", "MC", ""]), JSON),
        "samples": st.one_of(st.integers(-3, 12), JSON),
        "k": st.one_of(st.integers(-2, 6), st.integers(), JSON),
        "explain": st.one_of(st.booleans(), JSON),
        "extra": JSON,
    },
)
BODIES = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda v: json.dumps(v).encode()),
    FIELDS.map(lambda v: json.dumps(v).encode()),
    FIELDS.map(lambda v: json.dumps(v).encode()[:-1]),  # truncated JSON
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=BODIES)
def test_fuzzed_bodies_never_get_a_5xx(client, body):
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (body, r.status_code, r.text)
    assert r.status_code == 200 or r.json()["detail"]
