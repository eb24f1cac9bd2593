"""ONNX export: the graph computes what PyTorch computes (padded batches included), int8 stays close, and the
exported run is a run like any other (loads, calibrates, decides, evaluates) except where it says it cannot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import caveat
from caveat.errors import ConfigError
from caveat.explain import ExplainModel, explain
from caveat.inference import Predictor
from caveat.models import onnx as onnx_export
from caveat.models import rundir
from caveat.models.encoding import Collator, encode_texts, encode_words
from caveat.models.onnx import NotExportedError, OnnxClassifier
from caveat.training.export import export_run
from tests.conftest import one_thread

pytest.importorskip("onnxruntime")

ATOL = 1e-4  # float32 ONNX Runtime vs PyTorch: same arithmetic, other kernels (observed ~1e-6)
TEXTS = [
    "alpha",
    "the alpha card is really quite very now",
    "beta money",
    "my gamma parcel was stolen today and then the phone too",
    "please help",
    "gamma",
]
SENTENCES = [["alice", "visited", "paris"], ["bob"], ["the", "smith", "house", "in", "rome", "was", "very", "quiet"]]


@pytest.fixture(scope="module")
def text_fp32(served_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "text-fp32"
    with one_thread():
        summary = export_run(served_run, out)
    return out, summary


@pytest.fixture(scope="module")
def text_int8(served_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "text-int8"
    with one_thread():
        summary = export_run(served_run, out, quantize="int8")
    return out, summary


@pytest.fixture(scope="module")
def ner_fp32(ner_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "ner-fp32"
    with one_thread():
        export_run(ner_run, out)
    return out


def _models(source, exported):
    _, torch_model = rundir.load_model(rundir.open_run(source))
    tokenizer, onnx_model = rundir.load_model(rundir.open_run(exported))
    return tokenizer, torch_model, onnx_model


def test_the_layout_names_are_the_run_directory_s():
    assert (onnx_export.MODEL_DIR, onnx_export.HEAD_FILE) == (rundir.MODEL_DIR, rundir.HEAD_FILE)
    assert rundir.COMPLETE_FILE["onnx"] == "model.onnx" and rundir.LOADERS["onnx"] is onnx_export.load_onnx


def test_text_graph_equals_pytorch_on_a_padded_batch(served_run, text_fp32):
    tokenizer, torch_model, onnx_model = _models(served_run, text_fp32[0])
    assert isinstance(onnx_model, OnnxClassifier) and not onnx_model.training
    batch = Collator(tokenizer.pad_token_id)(encode_texts(tokenizer, TEXTS, 128))  # (6, T), mixed lengths
    assert (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        expected = torch_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    got = onnx_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert got.logits.shape == expected.logits.shape and got.features.shape == expected.features.shape  # (6, C), (6, D)
    np.testing.assert_allclose(got.logits.numpy(), expected.logits.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.features.numpy(), expected.features.numpy(), atol=ATOL, rtol=0)
    assert text_fp32[1]["parity_max_abs"] <= ATOL
    # one input alone (no padding) gives what it gives inside the padded batch
    alone = onnx_model(
        input_ids=batch["input_ids"][:1, : int(batch["attention_mask"][0].sum())],
        attention_mask=batch["attention_mask"][:1, : int(batch["attention_mask"][0].sum())],
    )
    np.testing.assert_allclose(alone.logits.numpy(), got.logits[:1].numpy(), atol=ATOL, rtol=0)


def test_token_graph_equals_pytorch_on_a_padded_batch(ner_run, ner_fp32):
    tokenizer, torch_model, onnx_model = _models(ner_run, ner_fp32)
    batch = Collator(tokenizer.pad_token_id)(encode_words(tokenizer, SENTENCES, 128))
    with torch.no_grad():
        expected = torch_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    got = onnx_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert got.features.shape == expected.features.shape and got.features.dim() == 3  # (B, T, D) per token
    np.testing.assert_allclose(got.logits.numpy(), expected.logits.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.features.numpy(), expected.features.numpy(), atol=ATOL, rtol=0)
    source = Predictor.from_run(ner_run).predict(SENTENCES)
    exported = Predictor.from_run(ner_fp32).predict(SENTENCES)
    np.testing.assert_allclose(exported.logits, source.logits, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(exported.mask, source.mask)


def test_int8_agrees_with_float32_and_keeps_the_float_head(served_run, text_int8, text_data):
    texts = [json.loads(line)["text"] for line in (text_data / "test.jsonl").read_text().splitlines()]  # 60
    source = Predictor.from_run(served_run, calibrated=False).predict(texts)
    int8 = Predictor.from_run(text_int8[0]).predict(texts)
    agreement = (int8.logits[0].argmax(-1) == source.logits[0].argmax(-1)).mean()
    # A random 2-layer, 32-wide model quantised per tensor: measured 1.0 here; 0.9 leaves room for other seeds
    # while still failing a graph whose int8 weights were wrong (chance is 1/3).
    assert agreement >= 0.9, agreement
    assert np.abs(int8.probs - source.probs).max() < 0.1  # probabilities, not logits: scale-free
    assert text_int8[1]["quantize"] == "int8" and text_int8[1]["int8_argmax_agreement"] >= 0.5
    import onnx

    graph = onnx.load(str(text_int8[0] / "model" / "model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops  # the MatMuls are int8 (size: see the benchmark)
    # the head stays float32: logits are exactly head.safetensors applied to the graph's features (Laplace reads it)
    model = Predictor.from_run(text_int8[0]).model
    with torch.no_grad():
        refit = model.head(torch.from_numpy(int8.features)).numpy()
    np.testing.assert_allclose(refit, int8.logits[0], atol=1e-5, rtol=0)


def test_exported_run_records_its_source_and_drops_the_calibration(served_run, text_int8):
    info = json.loads((text_int8[0] / "caveat.json").read_text())
    source = json.loads((served_run / "caveat.json").read_text())
    assert info["architecture"] == "onnx" and "calibration" in source and "calibration" not in info
    assert info["exported_from"]["run"] == str(served_run.resolve())
    assert info["exported_from"]["quantize"] == "int8" and info["exported_from"]["opset"] == 17
    assert info["labels"] == source["labels"] and info["config"] == source["config"]
    assert not (text_int8[0] / "calibration.safetensors").exists() and not (text_int8[0] / "metrics.json").exists()
    assert text_int8[1]["next"] == f"caveat calibrate {text_int8[0]}"
    assert {p.name for p in (text_int8[0] / "model").iterdir()} >= {"model.onnx", "head.safetensors", "tokenizer.json"}


@pytest.fixture(scope="module")
def calibrated_int8(text_int8, tmp_path_factory):
    """The int8 run, calibrated on its own calibration split (a copy: calibrating writes into the run)."""
    run = tmp_path_factory.mktemp("onnx") / "text-int8-calibrated"
    shutil.copytree(text_int8[0], run)
    with one_thread():
        model = caveat.load(run)
        assert not model.calibrated
        assert model.calibrate(target_risk=0.2, alpha=0.2) is model
    return run


def test_exported_run_calibrates_predicts_and_decides(calibrated_int8):
    with one_thread():
        out = caveat.load(calibrated_int8).predict(["the alpha card", "beta money please", "gamma"])
    assert [row.label for row in out] == ["first", "second", "third"]
    assert {row.decision for row in out} <= {"answer", "abstain", "route"}
    assert all(row.prediction_set for row in out)
    info = json.loads((calibrated_int8 / "caveat.json").read_text())
    assert info["calibration"]["laplace"]  # last-layer Laplace, fitted with the exported float32 head
    assert set(out[0].uncertainty) == {"least_confidence", "entropy", "energy", "mahalanobis", "knn"}


def test_exported_run_serves_predicts_evaluates_and_reports(calibrated_int8, served_run):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from caveat.cli.app import app
    from caveat.report.build import build_report
    from caveat.service import ServiceSettings, create_app

    texts = ["the alpha card", "my beta parcel now"]
    with one_thread():
        rows = caveat.load(calibrated_int8).predict(texts).to_records()
        printed = CliRunner().invoke(app, ["predict", str(calibrated_int8), *texts])
        with TestClient(create_app(ServiceSettings.from_env({}, run_dir=calibrated_int8))) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.02)
            served = client.post("/v1/predict", json={"texts": texts}).json()
            refused = client.post("/v1/predict", json={"texts": texts, "method": "mc_dropout", "samples": 3})
            unexplained = client.post("/v1/explain", json={"text": texts[0]})  # ig, the default: needs gradients
            explained = client.post("/v1/explain", json={"text": texts[0], "method": "occlusion"})
        metrics = caveat.load(calibrated_int8).evaluate("test", write=False)
        report = build_report(calibrated_int8, "test")
    assert [json.loads(line) for line in printed.stdout.splitlines()] == json.loads(json.dumps(rows))
    assert [r["label"] for r in served["predictions"]] == [r["label"] for r in rows] and served["calibrated"]
    assert refused.status_code == 422 and "source run" in refused.text
    assert unexplained.status_code == 422 and "integrated gradients" in unexplained.text
    assert explained.status_code == 200 and [w["word"] for w in explained.json()["words"]] == texts[0].split()
    assert metrics["accuracy"] >= 0.9 and "conformal" in metrics and "abstention" in metrics
    assert report.section_keys[:2] == ["overview", "export"]
    section = next(s for s in report.sections if s.key == "export")
    assert {m.key: m.value for m in section.metrics}["exported_from"] == str(served_run.resolve())
    table = section.tables[0].records()
    accuracy = next(r for r in table if r["figure"] == "accuracy")
    assert accuracy["exported"] == metrics["accuracy"]


def test_exported_ner_run_calibrates_and_flags_spans(ner_fp32, tmp_path):
    run = tmp_path / "ner"
    shutil.copytree(ner_fp32, run)
    with one_thread():
        model = caveat.load(run).calibrate(target_risk=0.2, delta=0.1)
        rows = model.predict(SENTENCES)
    assert model.calibrated and len(rows) == len(SENTENCES)
    assert all("spans" in row for row in rows)


def test_what_only_the_source_run_can_do_fails_clearly(text_fp32, served_run):
    predictor = Predictor.from_run(text_fp32[0], calibrated=False)
    with pytest.raises(ConfigError, match="MC dropout and training need the PyTorch model.*source run"):
        predictor.predict(["alpha"], samples=3)
    with pytest.raises(ConfigError, match=f"samples=1.*{served_run.name}"):
        predictor.model.train()
    assert predictor.model.train(False) is predictor.model and predictor.model.eval() is predictor.model
    assert not hasattr(predictor.model, "encoder")  # NotExportedError is an AttributeError
    with pytest.raises(NotExportedError, match="integrated gradients.*source run"):
        explain(ExplainModel(predictor), "the alpha card", method="ig")
    with pytest.raises(ConfigError, match="predicts only; delta"):
        predictor.model(input_ids=torch.ones(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 3), delta=1.0)
    occlusion = explain(ExplainModel(predictor), "the alpha card", method="occlusion")  # perturbation: works
    assert occlusion.words == ["the", "alpha", "card"]


def test_export_refuses_what_it_cannot_do(served_run, text_fp32, tmp_path):
    with pytest.raises(ConfigError, match="out='.*' exists and is not empty"):
        export_run(served_run, text_fp32[0])
    with pytest.raises(ConfigError, match="already an ONNX export"):
        export_run(text_fp32[0], tmp_path / "again")
    with pytest.raises(ConfigError, match="quantize='int4': use int8"):
        export_run(served_run, tmp_path / "int4", quantize="int4")
    with pytest.raises(ConfigError, match="format='tflite'"):
        export_run(served_run, tmp_path / "tflite", format="tflite")
    assert not (tmp_path / "int4").exists()  # nothing half-written


def test_cli_export_refuses_a_non_empty_out_with_the_flag_name(served_run, text_fp32):
    proc = subprocess.run(
        [sys.executable, "-m", "caveat", "export", str(served_run), "--out", str(text_fp32[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--out=" in proc.stderr and "not empty" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_export_and_the_model_twin(served_run, tmp_path):
    from typer.testing import CliRunner

    from caveat.cli.app import app

    with one_thread():
        result = CliRunner().invoke(app, ["export", str(served_run), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["next"] == f"caveat calibrate {tmp_path / 'cli'}" and summary["format"] == "onnx"
    assert f"caveat calibrate {tmp_path / 'cli'}" in result.stderr
    with one_thread():
        exported = caveat.load(served_run).export(tmp_path / "api")
    assert isinstance(exported, caveat.Model) and not exported.calibrated
    assert exported.predictor.predict(["alpha"]).logits.shape == (1, 1, 3)


def test_character_attacks_run_and_word_substitution_names_the_source_run(text_fp32, tiny_backbone):
    from caveat.robustness.run import attack_run

    options = {"max_examples": 6, "similarity_model": str(tiny_backbone), "write": False, "min_similarity": 0.5}
    with one_thread():
        result = attack_run(text_fp32[0], "test", "charswap", **options)
        assert result["attacks"]["charswap"]["n"] == 6
        with pytest.raises(NotExportedError, match="word-substitution attacks.*source run"):
            attack_run(text_fp32[0], "test", "wordsub", **options)


def test_an_ensemble_exports_member_0_and_says_so(served_run, tmp_path):
    source = tmp_path / "ensemble"
    shutil.copytree(served_run, source)
    info = json.loads((source / "caveat.json").read_text())
    info["ensemble"] = {"members": ["members/1"], "seeds": [0, 1]}  # member 0 is the run directory itself
    (source / "caveat.json").write_text(json.dumps(info))
    with one_thread():
        summary = export_run(source, tmp_path / "out")
    assert summary["ensemble"].startswith("member 0 only")
    exported = json.loads((tmp_path / "out" / "caveat.json").read_text())
    assert "ensemble" not in exported and exported["exported_from"]["ensemble_member"] == 0


def test_a_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ConfigError, match=r"onnxruntime; install it: pip install 'caveat\[onnx\]'"):
        onnx_export.require_onnx()
