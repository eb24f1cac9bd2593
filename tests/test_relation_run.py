"""A relation-classification run end to end: train a tiny model on a planted rule, predict, calibrate, evaluate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.inference import Predictor
from caveat.robustness.run import attack_run
from caveat.training.loop import Trainer
from tests.conftest import one_thread, tiny_overrides
from tests.fakes import planted_relations, write_jsonl

runner = CliRunner()
TASK = "relation-classification"


@pytest.fixture(scope="module")
def relation_run(tiny_backbone, tmp_path_factory):
    """Located(e1,e2) / Located(e2,e1) / Other, decided by which entity is a person and which a place."""
    data = tmp_path_factory.mktemp("relations")
    for name, n, seed in (("train", 240, 1), ("validation", 60, 2), ("test", 60, 3)):
        write_jsonl(data / f"{name}.jsonl", planted_relations(n, seed))
    run = tmp_path_factory.mktemp("relation-run") / "run"
    overrides = tiny_overrides(tiny_backbone, data, epochs=60, max_length=64, head_lr=1e-2)
    overrides = [o for o in overrides if not o.startswith("task=")] + [f"task={TASK}"]
    with one_thread():
        Trainer(load_config(overrides=overrides), run, progress=False).fit()
    return run


def test_tiny_model_learns_the_planted_relation(relation_run):
    with one_thread():
        metrics = evaluate_run(relation_run, "test", write=False)
    assert metrics["accuracy"] >= 0.9, metrics
    assert metrics["relation_macro_f1"] >= 0.9
    assert set(metrics["per_relation"]) == {"Located"}
    predictor = Predictor.from_run(relation_run)
    preds = predictor.predict(["the <e1>alice</e1> was <e2>rome</e2>", "the <e2>alice</e2> was <e1>rome</e1>"])
    assert [preds.labels[i] for i in preds.probs[0].argmax(-1)] == ["Located(e1,e2)", "Located(e2,e1)"]
    hidden = predictor.model.encoder.config.hidden_size
    assert preds.features.shape == (2, 2 * hidden)  # [h_<e1>; h_<e2>]


def test_predict_calibrate_evaluate_on_the_cli(relation_run):
    text = "The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>."
    result = runner.invoke(app, ["predict", str(relation_run), text], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["label"] in {"Located(e1,e2)", "Located(e2,e1)", "Other"}

    result = runner.invoke(app, ["calibrate", str(relation_run), "--target-risk", "0.3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["temperature"] > 0
    row = json.loads(runner.invoke(app, ["predict", str(relation_run), text]).stdout)
    assert row["decision"] in {"answer", "abstain", "route"} and "mahalanobis" in row["uncertainty"]

    result = runner.invoke(app, ["evaluate", str(relation_run), "--data", "test"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert "relation_macro_f1" in metrics
    split = metrics["relation_decisions"]  # "no relation" withheld apart from real relations
    withheld = split["withheld_no_relation"] + split["withheld_relation"]
    assert split["n"] == metrics["n"] and withheld == metrics["n"] - metrics["decisions"]["in_scope"]["answer"]

    # attacks on the calibrated run are read through its policy, as a text run's are (caught, answered error)
    with one_thread():
        attacked = attack_run(relation_run, "test", "charswap", max_examples=20, write=False)
    assert attacked["calibrated"] and "note" not in attacked
    assert {"caught", "answered_error_after_attack"} <= set(attacked["attacks"]["charswap"])


def test_predict_without_markers_says_how_to_mark(relation_run):
    result = runner.invoke(app, ["predict", str(relation_run), "the alice was in rome"])
    assert result.exit_code != 0
    assert "mark the two entities as <e1>" in result.output + str(result.exception)


def test_relation_runs_refuse_lora():
    with pytest.raises(ConfigError, match="relation-classification runs fine-tune the whole backbone"):
        load_config(overrides=[f"task={TASK}", "model.peft.method=lora"])


def test_the_service_takes_relation_texts_marked_or_with_character_spans(relation_run, served_run):
    from tests.service.conftest import serving

    marked, plain = "the <e1>alice</e1> was in <e2>rome</e2>", "the alice was in rome"
    head, tail = [plain.index("alice"), plain.index("alice") + 5], [plain.index("rome"), plain.index("rome") + 4]
    with one_thread(), serving(relation_run, allow_uncalibrated=True) as c:
        by_markers = c.post("/v1/predict", json={"texts": [marked]})
        by_spans = c.post("/v1/predict", json={"texts": [plain], "spans": [{"head": head, "tail": tail}]})
        assert by_markers.status_code == 200 and by_spans.status_code == 200, by_spans.text
        row, same = by_markers.json()["predictions"][0], by_spans.json()["predictions"][0]
        assert same["text"] == marked and same["probabilities"] == row["probabilities"]
        overlap = c.post("/v1/predict", json={"texts": [plain], "spans": [{"head": [4, 9], "tail": [6, 12]}]})
        assert overlap.status_code == 422 and "spans[0]" in overlap.text and "overlap" in overlap.text
        outside = c.post("/v1/predict", json={"texts": [plain], "spans": [{"head": [0, 3], "tail": [18, 99]}]})
        assert outside.status_code == 422 and "outside the text" in outside.text
        unmarked = c.post("/v1/predict", json={"texts": [plain]})
        assert unmarked.status_code == 422 and "texts[0]" in unmarked.text and "spans" in unmarked.text
    with serving(served_run) as c:  # a text-classification run
        refused = c.post("/v1/predict", json={"texts": ["alpha"], "spans": [{"head": [0, 1], "tail": [2, 3]}]})
        assert refused.status_code == 422 and "relation-classification runs" in refused.text


def test_explanations_attribute_to_context_words_and_keep_the_entities(relation_run):
    """Every method explains a relation through its context: entity words (markers included) are never removed,
    get no attribution, and every text a black-box method scores still holds both marked entities."""
    from caveat.explain import ExplainModel, explain

    model = ExplainModel.from_run(relation_run)
    text = "yesterday the tall <e1>alice</e1> was seen in old <e2>rome</e2> again"
    entity_words = {"<e1>alice</e1>", "<e2>rome</e2>"}
    scored = []
    real = model.predictor.predict

    def spy(inputs, **kw):
        scored.extend(inputs)
        return real(inputs, **kw)

    model.predictor.predict = spy
    with one_thread():
        for method in ("ig", "occlusion", "lime"):
            scored.clear()
            attribution = explain(model, text, method=method, seed=0)
            by_word = dict(zip(attribution.words, attribution.word_attributions))
            assert all(by_word[w] == 0.0 for w in entity_words), (method, by_word)
            context = [w for w in attribution.words if w not in entity_words]
            assert any(by_word[w] != 0.0 for w in context), (method, by_word)
            assert [w for w, f in zip(attribution.words, attribution.features) if not f] == sorted(
                entity_words, key=attribution.words.index
            )
            if method != "ig":
                assert len(scored) > 1 and all("<e1>alice</e1>" in t and "<e2>rome</e2>" in t for t in scored)


def test_the_report_has_a_relations_section_with_evaluates_figures(relation_run):
    """The report's relation section shows the official score and per-relation table evaluate computes, and on a
    calibrated run the policy's decisions split Other apart from real relations, with evaluate's counts."""
    from caveat.calibration.run import calibrate_run
    from caveat.report.build import build_report
    from caveat.report.html import render_html

    with one_thread():
        calibrate_run(relation_run, target_risk=0.3)
        metrics = evaluate_run(relation_run, "test", write=False)
        report = build_report(relation_run, "test")
    section = next(s for s in report.sections if s.key == "relations")
    shown = {m.key: m.value for m in section.metrics}
    assert shown["relations.macro_f1"] == pytest.approx(metrics["relation_macro_f1"], abs=1e-3)
    table = next(t for t in section.tables if t.key == "per_relation").records()
    assert [r["relation"] for r in table] == sorted(metrics["per_relation"])
    assert all(r["support"] == metrics["per_relation"][r["relation"]]["support"] for r in table)
    decisions = {r[""]: r["value"] for r in next(t for t in section.tables if t.key == "relation_decisions").records()}
    split = metrics["relation_decisions"]
    assert decisions["withheld (abstained or routed): gold Other"] == split["withheld_no_relation"]
    assert decisions["answered errors: between two relations"] == split["answered_errors_between_relations"]
    html = render_html(report)
    assert "Per relation (both directions)" in html and "The policy&#39;s decisions, the relation way" in html
