"""/v1/predict, /v1/explain, health and metrics through TestClient on a tiny calibrated run."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from caveat.calibration import Calibration
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.rows import predict_rows
from caveat.service import ServiceSettings, create_app
from tests.service.conftest import close, metric, serving

TEXTS = ["the alpha card", "my beta parcel now", "please gamma", "alpha beta", "house cat dog tree road"]
PLANTED = {"alpha": "first", "beta": "second", "gamma": "third"}


@pytest.fixture(scope="module")
def client(served_run):
    with serving(served_run) as c:
        yield c


@pytest.fixture(scope="module")
def raw_client(uncalibrated_run):
    """The same model at temperature 1: the tiny run's fitted temperature sits at its 0.05 bound, which
    saturates every probability (the [PAD] baseline's too), so a path integral over it is a step."""
    with serving(uncalibrated_run, allow_uncalibrated=True) as c:
        yield c


def test_each_row_is_what_caveat_predict_prints(client, served_run):
    response = client.post("/v1/predict", json={"texts": TEXTS, "k": 2})
    assert response.status_code == 200
    body = response.json()
    assert (body["task"], body["method"], body["calibrated"], body["run"]) == (
        "text-classification",
        "deterministic",
        True,
        "run",
    )
    run = open_run(served_run)
    expected = json.loads(json.dumps(predict_rows(Predictor.from_run(run), TEXTS, top_k=2).rows))
    assert close(body["predictions"], expected), (body["predictions"], expected)
    for row in body["predictions"][:3]:
        keyword = next(w for w in row["text"].split() if w in PLANTED)
        assert row["label"] == PLANTED[keyword] and len(row["probabilities"]) == 2
        assert set(row["uncertainty"]) == {"least_confidence", "entropy", "energy", "mahalanobis", "knn"}
        assert row["decision"] in {"answer", "abstain", "route"} and row["reason"]


def test_k_defaults_to_all_of_a_few_labels(client):
    row = client.post("/v1/predict", json={"texts": ["alpha"]}).json()["predictions"][0]
    assert list(row["probabilities"]) == sorted(row["probabilities"], key=row["probabilities"].get, reverse=True)
    assert len(row["probabilities"]) == 3 and abs(sum(row["probabilities"].values()) - 1) < 1e-5


def test_mc_dropout_adds_sample_scores_and_keeps_the_calibrated_decision(client):
    plain = client.post("/v1/predict", json={"texts": TEXTS[:2]}).json()["predictions"]
    mc = client.post("/v1/predict", json={"texts": TEXTS[:2], "method": "mc_dropout", "samples": 4, "k": 1}).json()
    assert mc["method"] == "mc_dropout"
    for p, m in zip(plain, mc["predictions"]):
        assert (m["decision"], m["prediction_set"], m["label"]) == (p["decision"], p["prediction_set"], p["label"])
        assert m["decided_by"] == "deterministic" and "decided_by" not in p  # said plainly, only where it could be read
        block = m["mc_dropout"]
        assert block["samples"] == 4 and len(block["probabilities"]) == 1
        assert set(block["uncertainty"]) == {"entropy", "expected_entropy", "mutual_information", "variance"}
        assert block["uncertainty"]["mutual_information"] >= -1e-9


def test_explain_true_attributes_the_prediction_to_the_planted_keyword(client):
    # beta and gamma, not alpha: "first" is also what the tiny model says of an empty text
    rows = client.post("/v1/predict", json={"texts": ["the gamma card", "my beta parcel"], "explain": True}).json()[
        "predictions"
    ]
    for row in rows:
        words = [a["word"] for a in row["attributions"]]
        assert words == row["text"].split() and set(row["attributions"][0]) == {"word", "attribution"}
        top = max(row["attributions"], key=lambda a: a["attribution"])["word"]
        assert PLANTED[top] == row["label"]


def test_explain_satisfies_completeness_for_the_predicted_and_an_asked_label(raw_client):
    client = raw_client
    body = client.post("/v1/explain", json={"text": "my beta parcel now", "steps": 64}).json()
    target, details = body["target"], body["details"]
    assert body["method"] == "ig" and target["kind"] == "label" and target["label"] == target["predicted"] == "second"
    assert target["calibrated"] is False and target["temperature"] == 1.0
    predicted = client.post("/v1/predict", json={"texts": ["my beta parcel now"]}).json()["predictions"][0]
    assert body["value"] == pytest.approx(predicted["probabilities"]["second"], abs=1e-5)  # what predict says
    assert [w["word"] for w in body["words"]] == body["text"].split() and all(w["feature"] for w in body["words"])
    total = sum(w["attribution"] for w in body["words"])
    gap = body["value"] - details["baseline_value"]
    assert abs(total - gap) <= 0.02 * abs(gap) + 1e-3 and abs(details["delta"]) <= 0.02 * abs(gap) + 1e-3
    assert abs(sum(details["token_attributions"]) - total) < 1e-6  # words are sums of their sub-tokens
    assert details["steps"] == 64 and body["evaluations"] == 64 + 2
    other = client.post("/v1/explain", json={"text": "my beta parcel now", "label": "third"}).json()
    assert other["target"]["label"] == "third" and other["target"]["predicted"] == "second"
    assert other["details"]["steps"] == 50  # the service's explain_steps
    same = client.post("/v1/explain", json={"text": "my beta parcel now", "target": "third"}).json()
    assert same["value"] == pytest.approx(other["value"], abs=1e-9) and same["target"] == other["target"]


def _entropy(client, text: str) -> float:
    """Entropy of the probabilities /v1/predict gives ``text`` (all 3 labels: k defaults to all of a few)."""
    p = np.array(
        list(client.post("/v1/predict", json={"texts": [text]}).json()["predictions"][0]["probabilities"].values())
    )
    return float(-(p * np.log(np.clip(p, 1e-12, None))).sum())


def test_explain_occlusion_of_the_uncertainty(client, raw_client, served_run):
    text = "please gamma now"
    ask = {"text": text, "method": "occlusion", "target": "uncertainty"}
    body = raw_client.post("/v1/explain", json=ask).json()
    assert (
        body["method"] == "occlusion"
        and body["target"]["kind"] == "uncertainty"
        and body["target"]["score"] == "entropy"
    )
    assert body["target"]["predicted"] == "third" and body["evaluations"] == len(text.split()) + 1
    assert body["value"] == pytest.approx(_entropy(raw_client, text), abs=1e-5) and body["value"] > 0.1
    for i, w in enumerate(body["words"]):  # occlusion: the entropy's drop when the word is deleted
        rest = " ".join(text.split()[:i] + text.split()[i + 1 :])
        assert w["attribution"] == pytest.approx(body["value"] - _entropy(raw_client, rest), abs=1e-5)
    calibrated = client.post("/v1/explain", json=ask).json()  # the entropy of the temperature-scaled prediction
    temperature = Calibration.from_run(open_run(served_run)).temperature
    assert calibrated["target"]["calibrated"] is True and calibrated["target"]["temperature"] == temperature != 1
    assert (
        calibrated["value"] == pytest.approx(_entropy(client, text), abs=1e-6) and calibrated["value"] < body["value"]
    )


def test_concurrent_requests_share_forward_passes_and_each_gets_its_rows(served_run):
    with serving(served_run, max_wait_ms=200, max_batch_size=64) as c:
        c.post("/v1/predict", json={"texts": ["warm up"]})
        before = metric(c.get("/metrics").text, "caveat_batches_total", kind="deterministic")
        texts = [f"{w} {'house ' * i}card" for i in range(8) for w in PLANTED]  # 24 different texts
        gate = threading.Barrier(len(texts))

        def ask(text):
            gate.wait()
            return c.post("/v1/predict", json={"texts": [text]}).json()["predictions"]

        with ThreadPoolExecutor(len(texts)) as pool:
            answers = list(pool.map(ask, texts))
        passes = metric(c.get("/metrics").text, "caveat_batches_total", kind="deterministic") - before
    assert [a[0]["text"] for a in answers] == texts and all(len(a) == 1 for a in answers)
    assert [a[0]["label"] for a in answers] == [PLANTED[t.split()[0]] for t in texts]
    assert 1 <= passes < len(texts)


def test_an_error_inside_inference_fails_only_that_request(served_run, monkeypatch):
    with serving(served_run, max_wait_ms=50) as c:
        predictor = c.app.state.caveat.engine.predictor
        real = predictor.predict

        def flaky(inputs, **kw):
            if "explode" in inputs:
                raise RuntimeError("planted failure")
            return real(inputs, **kw)

        monkeypatch.setattr(predictor, "predict", flaky)
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda t: c.post("/v1/predict", json={"texts": [t]}), ["alpha", "explode", "beta"]))
        assert [a.status_code for a in answers] == [200, 500, 200]
        body = answers[1].json()
        assert "RuntimeError" in body["detail"] and "planted failure" not in body["detail"]  # no internals in bodies
        assert body["request_id"] == answers[1].headers["x-request-id"]
        assert c.post("/v1/predict", json={"texts": ["gamma"]}).status_code == 200  # the worker keeps serving
        assert c.get("/readyz").status_code == 200
        assert metric(c.get("/metrics").text, "caveat_batch_failures_total") == 1


def test_metrics_count_routes_statuses_decisions_and_drift(served_run):
    with serving(served_run, drift_window=10, drift_min_inputs=5, drift_alpha=0.01) as c:
        state = c.app.state.caveat
        assert state.metrics.drift.enabled and len(state.metrics.drift.reference) == 30  # the calibration half
        c.post("/v1/predict", json={"texts": TEXTS})
        c.post("/v1/predict", json={"texts": []})
        text = c.get("/metrics").text
        assert metric(text, "caveat_http_requests_total", route="/v1/predict", status="200") == 1
        assert metric(text, "caveat_http_requests_total", route="/v1/predict", status="422") == 1
        assert metric(text, "caveat_http_request_duration_seconds_count", route="/v1/predict") == 2
        assert sum(
            metric(text, "caveat_decisions_total", action=a)
            for a in ("answer", "abstain", "route")
            if f'action="{a}"' in text
        ) == len(TEXTS)
        assert metric(text, "caveat_drift_window_inputs", score="least_confidence") == len(TEXTS)
        assert 0 <= metric(text, "caveat_drift_ks_pvalue", score="least_confidence") <= 1
        state.metrics.drift.reference = np.full(50, 0.6)  # plant a reference far from what is served
        c.post("/v1/predict", json={"texts": TEXTS})
        text = c.get("/metrics").text
        assert (
            metric(text, "caveat_drift_alarm", score="least_confidence") == 1
            and metric(text, "caveat_drift_ks_statistic", score="least_confidence") > 0.9
        )
        assert metric(text, "caveat_http_requests_total", route="/metrics", status="200") >= 1


def test_the_scores_stored_at_calibration_are_the_served_ones(served_run):
    from caveat.data.load import load_data

    run = open_run(served_run)
    caveats = Calibration.from_run(run)
    texts = [ex.text for ex in load_data(run.config).calibration.examples]
    _, scores = caveats.scores(Predictor.from_run(run).predict(texts))
    np.testing.assert_allclose(caveats.calibration_scores, scores[caveats.score], atol=1e-6)


def test_a_run_calibrated_when_least_confidence_was_called_msp_loads_and_serves_the_same(served_run, tmp_path):
    """caveat.json of runs calibrated before the rename says "score": "msp" (calibration and risk state): it
    loads under least_confidence, with one DeprecationWarning at load, and decides exactly as before."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(served_run, old)
    info = json.loads((old / "caveat.json").read_text())
    assert info["calibration"]["score"] == info["calibration"]["risk"]["score"] == "least_confidence"
    info["calibration"]["score"] = info["calibration"]["risk"]["score"] = "msp"
    (old / "caveat.json").write_text(json.dumps(info))

    with pytest.warns(DeprecationWarning, match="'msp' is now called 'least_confidence'") as caught:
        legacy = Calibration.from_run(open_run(old))
    assert len([w for w in caught if issubclass(w.category, DeprecationWarning)]) == 1  # once, at load
    current = Calibration.from_run(open_run(served_run))
    assert legacy.score == legacy.risk.score == "least_confidence"
    preds = Predictor.from_run(open_run(served_run), calibrated=False).predict(TEXTS)
    (p_old, u_old, d_old), (p_new, u_new, d_new) = legacy.decide(preds), current.decide(preds)
    np.testing.assert_array_equal(p_old, p_new)
    assert u_old.keys() == u_new.keys() and all(np.array_equal(u_old[k], u_new[k]) for k in u_new)
    assert d_old.action.tolist() == d_new.action.tolist() and d_old.reason == d_new.reason
    np.testing.assert_array_equal(d_old.prediction_set, d_new.prediction_set)

    with serving(old) as c, serving(served_run) as d:
        rows_old = c.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
        rows_new = d.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
    assert close(rows_old, rows_new)
    assert all("least_confidence" in r["uncertainty"] and "msp" not in r["uncertainty"] for r in rows_old)


def test_uncalibrated_runs_are_refused_unless_allowed(uncalibrated_run):
    with pytest.raises(ConfigError, match=r"not calibrated.*caveat calibrate .*--allow-uncalibrated"):
        create_app(ServiceSettings.from_env({}, run_dir=uncalibrated_run))
    with serving(uncalibrated_run, allow_uncalibrated=True) as c:
        body = c.post("/v1/predict", json={"texts": ["the alpha card"]}).json()
        row = body["predictions"][0]
        assert body["calibrated"] is False and row["label"] == "first"
        assert "caveat calibrate" in row["reason"] and not {"decision", "prediction_set", "uncertainty"} & set(row)
        assert metric(c.get("/metrics").text, "caveat_drift_enabled", score="none") == 0


def test_ner_runs_take_tokens_or_texts_and_return_spans(ner_run):
    with pytest.raises(ConfigError, match=r"not calibrated.*caveat calibrate .*--allow-uncalibrated.*entity spans"):
        create_app(ServiceSettings.from_env({}, run_dir=ner_run))
    with serving(ner_run, allow_uncalibrated=True) as c:
        body = c.post("/v1/predict", json={"tokens": [["the", "bob", "smith", "went", "to", "rome"]]}).json()
        row = body["predictions"][0]
        assert body["task"] == "token-classification" and row["text"] == "the bob smith went to rome"
        assert [(s["text"], s["label"]) for s in row["spans"]] == [("bob smith", "PER"), ("rome", "LOC")]
        assert all(0 < s["probability"] <= 1 and "decision" not in s for s in row["spans"])
        assert "caveat calibrate" in row["reason"] and body["calibrated"] is False
        same = c.post("/v1/predict", json={"texts": ["the bob smith went to rome"]}).json()["predictions"][0]
        assert same["spans"] == row["spans"]
        for bad, match in (
            ({"tokens": [["a"]], "method": "mc_dropout"}, "mc_dropout.*text-classification"),
            ({"texts": ["a"], "explain": True}, "explain=true is for text-classification"),
            ({"tokens": [["a", " "]]}, r"tokens\[0\]\[1\] is empty"),
        ):
            r = c.post("/v1/predict", json=bad)
            assert r.status_code == 422 and re.search(match, r.json()["detail"]), r.json()
        words = ["the", "bob", "smith", "went", "to", "rome"]
        body = c.post("/v1/explain", json={"tokens": words, "span": "rome", "method": "occlusion"}).json()
        target = body["target"]
        assert (target["kind"], target["span"], target["label"], target["predicted"]) == ("span", "rome", "LOC", "LOC")
        assert (target["start"], target["end"], target["calibrated"], target["temperature"]) == (5, 6, False, 1.0)
        assert [w["word"] for w in body["words"]] == words and body["text"] == " ".join(words)
        assert [w["feature"] for w in body["words"]] == [True] * 5 + [False] and body["words"][5]["attribution"] == 0
        assert 0 < body["value"] <= 1 and body["evaluations"] == 5 + 1
        as_text = c.post("/v1/explain", json={"text": " ".join(words), "span": "rome", "method": "occlusion"}).json()
        assert as_text["words"] == body["words"] and as_text["value"] == pytest.approx(body["value"], abs=1e-6)
        for bad, match in (
            ({"text": "bob went home"}, "explain one span: send span"),
            ({"tokens": words, "span": "paris"}, "span 'paris' is not in the sentence"),
            ({"tokens": words, "span": "rome", "label": "CITY"}, "label='CITY' is not an entity type.*LOC"),
            ({"tokens": words, "span": "rome", "target": "uncertainty"}, "target='uncertainty' is for text"),
            (
                {"tokens": words, "span": "went", "method": "occlusion"},  # refused by caveat.explain itself
                "'went' is not a predicted span .*pass label=TYPE",
            ),
        ):
            r = c.post("/v1/explain", json=bad)
            assert r.status_code == 422 and re.search(match, r.json()["detail"]), r.json()
        assert (
            c.post("/v1/explain", json={"tokens": words, "span": "went", "label": "LOC", "method": "occlusion"}).json()[
                "target"
            ]["label"]
            == "LOC"
        )


def test_calibrated_ner_runs_keep_or_flag_each_span(calibrated_ner_run):
    with serving(calibrated_ner_run) as c:
        body = c.post(
            "/v1/predict", json={"tokens": [["the", "bob", "smith", "went", "to", "rome"], ["nothing", "here"]]}
        ).json()
        assert body["calibrated"] is True
        spans = body["predictions"][0]["spans"]
        assert [(s["text"], s["label"]) for s in spans] == [("bob smith", "PER"), ("rome", "LOC")]
        assert body["predictions"][1]["spans"] == []
        for span in spans:
            assert (
                0 < span["confidence"] <= 1 and span["decision"] in {"keep", "flag"} and "confidence" in span["reason"]
            )
        body = c.post(
            "/v1/explain",
            json={"tokens": ["the", "bob", "smith", "went", "to", "rome"], "span": "bob smith", "method": "occlusion"},
        ).json()
        assert (
            body["target"]["label"] == "PER"
            and body["target"]["calibrated"] is True
            and body["target"]["temperature"] > 0
        )
        assert body["value"] == pytest.approx(
            spans[0]["confidence"], abs=1e-5
        )  # the product of its calibrated tag probabilities
        text = c.get("/metrics").text
        assert (
            sum(metric(text, "caveat_decisions_total", action=a) for a in ("keep", "flag") if f'action="{a}"' in text)
            == 2
        )
        assert metric(text, "caveat_drift_enabled", score="span_uncertainty") == 1  # tests/service/test_span_drift.py
        assert metric(text, "caveat_drift_window_inputs", score="span_uncertainty") == 2


def test_api_key_guards_the_api_but_not_health(served_run, monkeypatch):
    monkeypatch.setenv("CAVEAT_API_KEY", "s3cret")
    app = create_app(ServiceSettings.from_env(run_dir=served_run))
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        while c.get("/readyz").status_code != 200:
            pass
        missing = c.post("/v1/predict", json={"texts": ["alpha"]})
        assert missing.status_code == 401 and "missing X-API-Key" in missing.json()["detail"]
        wrong = c.post("/v1/predict", content=b"{not json", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "wrong X-API-Key" in wrong.json()["detail"]
        assert c.get("/metrics").status_code == 401
        assert c.post("/v1/predict", json={"texts": ["alpha"]}, headers={"X-API-Key": "s3cret"}).status_code == 200
        text = c.get("/metrics", headers={"X-API-Key": "s3cret"}).text
        # refused before routing, yet counted under the route asked for (not "other")
        assert metric(text, "caveat_http_requests_total", route="/v1/predict", status="401") == 2
        assert "APIKeyHeader" in json.dumps(c.get("/openapi.json").json()["components"]["securitySchemes"])


def test_a_model_that_fails_to_load_is_reported_not_served(served_run, monkeypatch):
    from caveat.service.engine import Engine

    def broken(self):
        raise OSError("disk on fire")

    monkeypatch.setattr(Engine, "load", broken)
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceSettings.from_env({}, run_dir=served_run))) as c:
        for _ in range(100):
            ready = c.get("/readyz")
            if "disk on fire" in ready.json()["detail"]:
                break
        assert ready.status_code == 503 and "OSError: disk on fire" in ready.json()["detail"]
        r = c.post("/v1/predict", json={"texts": ["alpha"]})
        assert r.status_code == 503 and "retry once /readyz" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_openapi_documents_the_routes_and_schemas(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/explain", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {
        "PredictRequest",
        "PredictResponse",
        "TextPrediction",
        "TokenPrediction",
        "ExplainRequest",
        "ExplainResponse",
        "Problem",
    } <= set(schemas)
    assert schemas["PredictRequest"]["properties"]["method"]["enum"] == [
        "deterministic",
        "mc_dropout",
    ] or "deterministic" in json.dumps(schemas["PredictRequest"]["properties"]["method"])
