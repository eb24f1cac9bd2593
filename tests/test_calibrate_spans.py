"""NER span calibration: word temperature, span confidence, the kept-span threshold, and its use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from caveat.calibration import Calibration, SpanCalibration, fit_spans
from caveat.calibration import spans as span_calibration
from caveat.calibration.run import calibrate_run
from caveat.calibration.spans import span_scores
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.training.loop import Trainer
from caveat.types import Task
from tests.conftest import tiny_overrides

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_span_confidence_is_the_product_of_calibrated_word_probabilities():
    z = np.log(
        np.array(
            [
                [0.1, 0.8, 0.05, 0.03, 0.02],  # B-PER
                [0.2, 0.05, 0.7, 0.03, 0.02],  # I-PER
                [0.9, 0.02, 0.02, 0.03, 0.03],
            ]
        )
    )  # O
    spans, conf, right = span_scores([z, z[2:]], 1.0, LABELS, "product", gold=[("B-PER", "I-PER", "O"), ("O",)])
    assert spans[0] == [(0, 2, "PER", pytest.approx(0.8 * 0.7))] and spans[1] == []
    assert conf == pytest.approx([0.56]) and right.tolist() == [True]
    _, hot, _ = span_scores([z], 2.0, LABELS, "min")  # a temperature > 1 softens every word
    p = np.exp(z / 2) / np.exp(z / 2).sum(-1, keepdims=True)
    assert hot == pytest.approx([min(p[0, 1], p[1, 2])])
    _, _, wrong = span_scores([z], 1.0, LABELS, "mean", gold=[("B-LOC", "I-LOC", "O")])
    assert wrong.tolist() == [False]  # boundaries right, type wrong: a wrong span
    with pytest.raises(ConfigError, match="span aggregate 'median' is not available"):
        span_scores([z], 1.0, LABELS, "median")


def planted_spans(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(S,) span confidences, most near 1 as in NER, and whether each span is right: P(right | c) = c."""
    conf = rng.beta(4.0, 1.0, n)  # (S,)
    return conf, rng.random(n) < conf


@pytest.fixture
def calibrate_planted(monkeypatch):
    """``calibrate_spans`` on planted span arrays: the model, the data and caveat.json are fakes, the
    threshold choice is the real one; calibration.safetensors is a dict. Returns ``(conf, right, **options) ->
    SpanCalibration``."""
    planted, stored = {}, {}
    sentence = SimpleNamespace(tokens=["w"], tags=["O"])
    preds = SimpleNamespace(mask=np.ones((1, 1), dtype=bool), logits=np.zeros((1, 1, 1, len(LABELS))))  # (M, N, W, C)
    data = SimpleNamespace(calibration=SimpleNamespace(examples=[sentence]))
    monkeypatch.setattr(fit_spans, "load_data", lambda config: data)
    monkeypatch.setattr(
        fit_spans, "Predictor", SimpleNamespace(from_run=lambda run, **_: SimpleNamespace(predict=lambda _: preds))
    )
    monkeypatch.setattr(
        fit_spans, "TemperatureScaling", lambda: SimpleNamespace(fit=lambda *_: SimpleNamespace(temperature=1.0))
    )

    def planted_scores(logits, temperature, labels, aggregate, gold=None):
        return [], planted["conf"], None if gold is None else planted["right"]

    def save(run, summary):
        run.info["calibration"] = summary
        return summary

    monkeypatch.setattr(fit_spans, "span_scores", planted_scores)
    monkeypatch.setattr(fit_spans, "save_calibration", save)
    monkeypatch.setattr(fit_spans, "save_arrays", lambda run, arrays: stored.update(arrays))
    monkeypatch.setattr(span_calibration, "stored_arrays", lambda run: stored)

    def calibrate(conf: np.ndarray, right: np.ndarray, **options) -> SpanCalibration:
        planted.update(conf=conf, right=right)
        stored.clear()
        run = SimpleNamespace(task=Task.TOKEN_CLASSIFICATION, config=None, labels=LABELS, path=Path("ner"), info={})
        fit_spans.calibrate_spans(run, **options)
        return SpanCalibration.from_run(run)

    return calibrate


def test_span_threshold_bounds_the_share_of_wrong_kept_spans(calibrate_planted):
    # 200 calibration sets of 1000 planted spans; each threshold is judged on one fresh draw of 100,000
    # spans (its share of wrong kept spans has sd ~0.0015). The share may exceed the target in at most
    # delta of the draws, up to 3 binomial sd. Seen: 3-4% of draws fail at delta = 0.05, ~50% at 0.5.
    rng = np.random.default_rng(12)
    target, delta, draws, n = 0.1, 0.05, 200, 1000
    fresh_conf, fresh_right = planted_spans(100_000, rng)
    failures, kept = 0, []
    for _ in range(draws):
        caveats = calibrate_planted(*planted_spans(n, rng), target_risk=target, delta=delta)
        keep = caveats.risk.decide(1.0 - fresh_conf)  # (S,) as SpanCalibration.spans decides
        failures += bool(keep.any()) and float(np.mean(~fresh_right[keep])) > target
        kept.append(keep.mean())
    allowed = delta * draws + 3 * math.sqrt(draws * delta * (1 - delta))  # 19.2
    assert failures <= allowed, (failures, allowed)
    assert np.mean(kept) > 0.3 and np.mean(np.array(kept) > 0) > 0.95, np.mean(kept)  # all spans: ~20% wrong


def test_the_spans_uncertainty_is_stored_as_the_drift_reference(calibrate_planted):
    conf, right = planted_spans(300, np.random.default_rng(5))
    caveats = calibrate_planted(conf, right, target_risk=0.1, delta=0.1)
    np.testing.assert_array_equal(caveats.calibration_scores, 1.0 - conf)  # (S,) one per calibration span


def test_calibrate_a_ner_run_then_keep_or_flag_spans(tiny_backbone, ner_data, tmp_path):
    run = tmp_path / "ner"
    Trainer(
        load_config(overrides=tiny_overrides(tiny_backbone, ner_data, task="token-classification")), run, progress=False
    ).fit()
    with pytest.raises(ConfigError, match="ood / ood_rate are for text-classification runs"):
        calibrate_run(run, ood=["x.txt"])
    summary = calibrate_run(run, target_risk=0.2, delta=0.1)
    assert summary["task"] == "token-classification" and summary["n"] == 20  # half of the 40 validation sentences
    assert summary["n_spans"] > 0 and summary["temperature"] > 0 and 0 <= summary["span_ece_after"] <= 1
    assert json.loads((run / "caveat.json").read_text())["calibration"]["aggregate"] == "product"

    opened = open_run(run)
    assert Calibration.from_run(opened) is None  # the text-classification caveats do not apply
    caveats = SpanCalibration.from_run(opened)
    sentences = [["Maria", "visited", "Berlin", "today"], ["nothing", "here"]]
    rows = caveats.spans(Predictor.from_run(opened).predict(sentences), [4, 2])
    assert len(rows) == 2
    threshold = caveats.risk.threshold
    for span in (s for row in rows for s in row):
        assert span["decision"] == ("keep" if 1 - span["confidence"] <= threshold else "flag")
        assert "confidence" in span["reason"]

    from typer.testing import CliRunner

    from caveat.cli.app import app

    row = json.loads(CliRunner().invoke(app, ["predict", str(run), "alice smith went to paris"]).stdout)
    assert row["spans"]  # the planted names
    for span in row["spans"]:  # the CLI carries the same keep/flag judgement as the service
        assert span["decision"] in ("keep", "flag") and "confidence" in span["reason"]

    metrics = evaluate_run(run, "test", write=False)
    assert metrics["calibrated"]["n_spans"] == metrics["spans"]["n_spans"]
    assert 0 <= metrics["abstention"]["coverage"] <= 1 and metrics["abstention"]["guarantee"] == caveats.risk.guarantee


def _planted_domain(n: int, seen_share: float, rng: np.random.Generator, names: list[str]):
    """``n`` one-span sentences; a share ``seen_share`` names a training entity. At equal confidence an unseen
    span is wrong four times as often (planted: familiarity, not confidence, carries the shift)."""
    seen = rng.random(n) < seen_share
    words = [[names[rng.integers(len(names))] if s else f"stranger{rng.integers(10**6)}"] for s in seen]
    conf = rng.beta(8, 1.5, n)
    wrong = rng.random(n) < np.where(seen, 0.25, 1.0) * (1 - conf)
    return [[(0, 1, "PER", c)] for c in conf], words, conf, ~wrong


def test_familiarity_weights_carry_the_span_bound_to_a_domain_of_unseen_entities():
    """Calibration spans are 80% training entities, the target's 20%. Weighted by confidence, length and type the
    sample keeps the calibration mix and the kept-span risk on the target breaks the 10% bound; with familiarity
    (fit_spans.Familiarity) the sample has the target's mix and the bound holds."""
    from caveat.decide.risk import RiskControlled
    from caveat.decide.shift import DensityRatio, rejection_sample

    names = [f"name{i}" for i in range(50)]
    train = [SimpleNamespace(tokens=[n, "said"], tags=["B-PER", "O"]) for n in names]
    familiar = fit_spans.Familiarity.of_examples(train)
    assert familiar.features(["Name3"], "PER") == [1.0, 1.0, math.log(2)]
    assert familiar.features(["name3"], "LOC") == [0.0, 1.0, math.log(2)]
    assert familiar.features(["name3", "said"], "PER") == [0.0, 0.0, math.log(2)]
    assert familiar.features(["stranger"], "PER") == [0.0, 0.0, 0.0]

    rng = np.random.default_rng(3)
    fresh_spans, fresh_words, fresh_conf, fresh_right = _planted_domain(50_000, 0.2, rng, names)
    failures = {False: 0, True: 0}
    for draw in range(10):
        spans, words, conf, right = _planted_domain(2000, 0.8, rng, names)
        t_spans, t_words, _, _ = _planted_domain(2000, 0.2, rng, names)
        for use in (False, True):
            f = familiar if use else None
            source = fit_spans._span_covariates(spans, words, ["PER"], f)
            ratio = DensityRatio(seed=draw).fit(source, fit_spans._span_covariates(t_spans, t_words, ["PER"], f))
            keep = rejection_sample(ratio.weights(source), seed=draw)
            risk = RiskControlled(0.1, 0.05, allow_empty=True).calibrate((1 - conf)[keep], (~right)[keep])
            kept = risk.decide(1 - fresh_conf)
            failures[use] += bool(kept.any()) and float(np.mean(~fresh_right[kept])) > 0.1
    assert failures[True] <= 2 and failures[False] >= 8, failures
