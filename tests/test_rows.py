"""The rows every face serves (``caveat.rows``), on the tiny calibrated run."""

from __future__ import annotations

import pytest

from caveat.inference import Predictor
from caveat.rows import predict_rows
from tests.conftest import one_thread

TEXTS = ["the alpha card", "my beta parcel now", "please gamma", "alpha beta", "house cat dog tree road"]


@pytest.fixture(scope="module")
def predictor(served_run):
    with one_thread():
        yield Predictor.from_run(served_run)


def test_mc_dropout_rows_keep_the_calibrated_decision_and_say_so(predictor):
    # the calibration's quantile and risk threshold were fitted on the deterministic, temperature-scaled
    # probabilities: applied to MC means they would guarantee nothing, so those stay informative only
    plain = predict_rows(predictor, TEXTS).rows
    mc = predict_rows(predictor, TEXTS, method="mc_dropout", samples=4).rows
    for p, m in zip(plain, mc):
        assert "decided_by" not in p and m["decided_by"] == "deterministic"
        assert {k: m[k] for k in p} == p  # label, probabilities, uncertainty, set, decision and reason unchanged
        assert m["mc_dropout"]["samples"] == 4 and set(m["mc_dropout"]["probabilities"]) == set(p["probabilities"])
    # the two sets of probabilities do differ (MC means are neither temperature-scaled nor one pass): which one
    # decided is worth saying
    assert any(abs(m["probability"] - m["mc_dropout"]["probability"]) > 1e-3 for m in mc)
