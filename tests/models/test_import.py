"""caveat import: a transformers classifier fine-tuned elsewhere becomes a run whose logits are transformers' own,
whose pooling + head (efficient MC dropout) and features + head (Laplace) reproduce them, and which calibrates and
decides like any run; checkpoints caveat cannot import are refused with the reason and the fix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import caveat
from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError, DataError
from caveat.inference import Predictor
from caveat.models.imported import IMPORTED, ImportedClassifier
from caveat.models.rundir import open_run
from caveat.training.importing import held_out_roles, run_import
from caveat.types import Task
from caveat.uncertainty.methods.mc_dropout import encoder_layers, final_norm, sample_top_layers
from tests.conftest import one_thread
from tests.fakes import make_causal_lm, planted_ner, planted_texts, write_conll, write_jsonl

TEXTS = ["the alpha card", "my beta parcel now please", "gamma", "house cat dog tree road and the city"]
SENTENCES = [["alice", "visited", "paris"], ["bob", "smith", "went", "to", "rome", "today"], ["the", "cat"]]
NAMES = {0: "first", 1: "second", 2: "third"}
TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def fine_tune(model, batches: list[dict], steps: int = 120) -> None:
    """A few AdamW steps of the model's own loss: the plain transformers way."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        model(**batches[step % len(batches)]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def text_batches(tokenizer, rows: list[dict], size: int = 16) -> list[dict]:
    label2id = {v: k for k, v in NAMES.items()}
    out = []
    for i in range(0, len(rows), size):
        chunk = rows[i : i + size]
        batch = tokenizer([r["text"] for r in chunk], padding=True, return_tensors="pt")
        batch["labels"] = torch.tensor([label2id[r["label"]] for r in chunk])
        out.append(dict(batch))
    return out


def word_batch(tokenizer, sentences) -> dict:
    """Sentences with their BIO tags on each word's first sub-token (-100 elsewhere)."""
    tag2id = {v: k for k, v in TAGS.items()}
    enc = tokenizer([s for s, _ in sentences], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for i, (_, tags) in enumerate(sentences):
        previous = None
        for t, w in enumerate(enc.word_ids(i)):
            if w is not None and w != previous:
                labels[i, t] = tag2id[tags[w]]
            previous = w
    return {**enc, "labels": labels}


@pytest.fixture(scope="module")
def bert_checkpoint(tiny_backbone, tmp_path_factory):
    """A tiny BERT sequence classifier fine-tuned on planted keywords, saved by transformers."""
    from transformers import BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("bert-checkpoint")
    tokenizer = BertTokenizerFast.from_pretrained(tiny_backbone)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        tiny_backbone, num_labels=3, id2label=NAMES, label2id={v: k for k, v in NAMES.items()}
    )
    with one_thread():
        fine_tune(model, text_batches(tokenizer, planted_texts(96, seed=11)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama_checkpoint(tmp_path_factory):
    """A tiny Llama sequence classifier (pad token set, generic LABEL_k names), saved by transformers."""
    from transformers import LlamaForSequenceClassification, PreTrainedTokenizerFast

    lm = make_causal_lm(tmp_path_factory.mktemp("llama-lm"), ["alpha", "beta", "gamma"])
    folder = tmp_path_factory.mktemp("llama-checkpoint")
    torch.manual_seed(0)
    model = LlamaForSequenceClassification.from_pretrained(lm, num_labels=3)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(lm)
    with one_thread():
        fine_tune(model, text_batches(tokenizer, planted_texts(48, seed=12)), steps=6)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ner_checkpoint(tiny_backbone, tmp_path_factory):
    """A tiny BERT token classifier (BIO tags) fine-tuned on planted names, saved by transformers."""
    from transformers import BertForTokenClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("ner-checkpoint")
    tokenizer = BertTokenizerFast.from_pretrained(tiny_backbone)
    torch.manual_seed(0)
    model = BertForTokenClassification.from_pretrained(
        tiny_backbone, num_labels=5, id2label=TAGS, label2id={v: k for k, v in TAGS.items()}
    )
    sentences = planted_ner(64, seed=13)
    with one_thread():
        fine_tune(model, [word_batch(tokenizer, sentences[i : i + 16]) for i in range(0, 64, 16)])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Labelled data the checkpoints were not fine-tuned on: a calibration file and a test file."""
    folder = tmp_path_factory.mktemp("held-out")
    write_jsonl(folder / "calibration.jsonl", planted_texts(120, seed=21))
    write_jsonl(folder / "test.jsonl", planted_texts(40, seed=22))
    return folder


def hf_logits(folder, texts: list[str]) -> np.ndarray:
    """transformers' own logits of a padded batch, from the checkpoint folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()


def last_layer_output(model, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """``(last hidden state: the last transformer layer's output after a decoder's final norm, forward's logits)``
    of one pass, the hidden state computed as efficient MC dropout computes it."""
    captured = {}

    def keep(module, args, out):
        captured["hidden"] = out[0] if isinstance(out, tuple) else out

    hook = encoder_layers(model.encoder)[-1].register_forward_hook(keep)
    try:
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    finally:
        hook.remove()
    norm = final_norm(model.encoder)
    with torch.no_grad():
        return (captured["hidden"] if norm is None else norm(captured["hidden"])), logits


def check_pool_and_head(predictor: Predictor, texts: list[str]) -> None:
    """Pooling + head from the last layer's output, and head(features), give forward's logits (with padding)."""
    model = predictor.model
    rows = [{"input_ids": ids} for ids in predictor.tokenizer(texts)["input_ids"]]
    batch = predictor.collate(rows)
    hidden, logits = last_layer_output(model, batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        _, pooled = model.pool_and_head(hidden, batch["attention_mask"])  # as efficient MC dropout calls it
        features = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).features
        torch.testing.assert_close(pooled, logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.head(features), logits, atol=1e-5, rtol=1e-5)  # what Laplace assumes


def check_efficient_mc_dropout(predictor: Predictor, texts: list[str]) -> None:
    """With every dropout at p=0, the top-layer samples are the deterministic logits."""
    for module in predictor.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = predictor.collate([{"input_ids": ids} for ids in predictor.tokenizer(texts)["input_ids"]])
    sampled, _ = sample_top_layers(
        predictor.model, batch["input_ids"], batch["attention_mask"], samples=3, top_layers=1
    )
    predictor.model.eval()
    with torch.no_grad():
        deterministic = predictor.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    for k in range(3):
        torch.testing.assert_close(sampled[k], deterministic, atol=1e-5, rtol=1e-5)


def test_an_imported_bert_gives_transformers_logits_and_its_pooling(bert_checkpoint, tmp_path):
    summary = run_import(bert_checkpoint, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "caveat.json").read_text())
    assert info["architecture"] == IMPORTED and info["labels"] == ["first", "second", "third"]
    assert summary["explicit"] and summary["task"] == "text-classification" and summary["data"] == {}
    assert any("no labelled data" in note for note in summary["notes"])
    assert not list((tmp_path / "run").rglob("*.bin"))
    predictor = Predictor.from_run(tmp_path / "run", calibrated=False)
    assert isinstance(predictor.model, ImportedClassifier)
    preds = predictor.predict(TEXTS)
    np.testing.assert_allclose(preds.logits[0], hf_logits(bert_checkpoint, TEXTS), atol=1e-5)
    assert [preds.labels[i] for i in preds.probs[0].argmax(-1)[:3]] == ["first", "second", "third"]
    check_pool_and_head(predictor, TEXTS)
    check_efficient_mc_dropout(predictor, TEXTS)


@pytest.mark.parametrize("pad_token", [True, False])
def test_an_imported_llama_scores_the_last_real_token_under_padding(llama_checkpoint, tmp_path, pad_token):
    folder = llama_checkpoint
    if not pad_token:  # transformers then scores position -1 and cannot batch; caveat follows the attention mask
        folder = tmp_path / "no-pad"
        shutil.copytree(llama_checkpoint, folder)
        config = json.loads((folder / "config.json").read_text())
        config["pad_token_id"] = None
        (folder / "config.json").write_text(json.dumps(config))
    summary = run_import(folder, tmp_path / "run")
    assert summary["explicit"] and summary["model_type"] == "llama"
    assert any("generic" in note for note in summary["notes"])
    predictor = Predictor.from_run(tmp_path / "run", calibrated=False)
    preds = predictor.predict(TEXTS)
    if pad_token:
        expected = hf_logits(folder, TEXTS)  # one padded batch
    else:
        expected = np.concatenate([hf_logits(folder, [t]) for t in TEXTS])  # one text at a time
    np.testing.assert_allclose(preds.logits[0], expected, atol=1e-5)
    check_pool_and_head(predictor, TEXTS)
    check_efficient_mc_dropout(predictor, TEXTS)


def test_an_imported_token_classifier_gives_each_words_first_sub_token_logits(ner_checkpoint, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    summary = run_import(ner_checkpoint, tmp_path / "run")
    assert summary["task"] == "token-classification" and summary["labels"] == list(TAGS.values())
    preds = Predictor.from_run(tmp_path / "run", calibrated=False).predict(SENTENCES)
    tokenizer = AutoTokenizer.from_pretrained(ner_checkpoint)
    model = AutoModelForTokenClassification.from_pretrained(ner_checkpoint).eval()
    for i, words in enumerate(SENTENCES):
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0].numpy()  # (T, C)
        word_ids = enc.word_ids(0)
        first = [word_ids.index(w) for w in range(len(words))]
        np.testing.assert_allclose(preds.logits[0, i, : len(words)], logits[first], atol=1e-5)
        assert preds.mask[i, : len(words)].all()


def test_an_imported_run_calibrates_and_decides(bert_checkpoint, held_out, tmp_path):
    model = caveat.import_checkpoint(
        bert_checkpoint,
        tmp_path / "run",
        calibration=str(held_out / "calibration.jsonl"),
        test=str(held_out / "test.jsonl"),
    )
    splits = model.run.info["data"]["splits"]
    assert splits["train"]["n"] == 60 and splits["validation"]["n"] + splits["calibration"]["n"] == 60
    assert "carved" in splits["calibration"]["source"] and splits["test"]["n"] == 40
    assert any(note.startswith("no train file") for note in model.run.info["imported"]["notes"])
    with one_thread():
        model.calibrate(target_risk=0.2, alpha=0.2)
    out = model.predict(TEXTS)
    assert {row.decision for row in out} <= {"answer", "abstain", "route"} and out[0].prediction_set
    assert model.evaluate("test")["accuracy"] >= 0.9  # the planted rule, learnt by the checkpoint
    attribution = model.explain("the alpha card", method="ig")
    assert len(attribution.words) == 3


def test_an_imported_decoder_calibrates_with_its_bias_free_head(llama_checkpoint, held_out, tmp_path):
    model = caveat.import_checkpoint(
        llama_checkpoint,
        tmp_path / "run",
        calibration=str(held_out / "calibration.jsonl"),
        labels=["first", "second", "third"],
    )
    assert model.labels == ["first", "second", "third"] and model.predictor.model.head.bias is None
    assert not any("generic" in note for note in model.run.info["imported"]["notes"])
    with one_thread():
        model.calibrate(target_risk=0.3, alpha=0.2)
    assert len(model.predict(TEXTS[:2])) == 2


def test_the_cli_imports_and_prints_the_next_commands(bert_checkpoint, ner_checkpoint, held_out, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(bert_checkpoint), "--out", str(tmp_path / "bare")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "--force --calibration FILE" in summary["next"][0]
    calibration = str(held_out / "calibration.jsonl")
    args = ["import", str(bert_checkpoint), "--out", str(tmp_path / "bare"), "--force", "--calibration", calibration]
    result = runner.invoke(app, [*args, "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["next"][0] == f"caveat calibrate {tmp_path / 'bare'}"
    assert open_run(tmp_path / "bare").config.seed == 3
    ner = tmp_path / "ner-data"
    ner.mkdir()
    write_conll(ner / "calibration.conll", planted_ner(30, seed=31))
    args = [
        "import",
        str(ner_checkpoint),
        "--out",
        str(tmp_path / "ner"),
        "--calibration",
        str(ner / "calibration.conll"),
    ]
    assert runner.invoke(app, args).exit_code == 0
    with one_thread():
        assert caveat.load(tmp_path / "ner").calibrate(target_risk=0.3).calibrated


def test_without_a_train_file_the_held_out_file_takes_the_train_role():
    text = held_out_roles(load_config(overrides=["data.calibration=c.jsonl"]))
    assert text.data.train == "c.jsonl" and text.data.calibration is None and text.data.validation_fraction == 0.5
    both = held_out_roles(load_config(overrides=["data.validation=v.jsonl", "data.calibration=c.jsonl"]))
    assert (both.data.train, both.data.validation, both.data.calibration) == ("v.jsonl", None, "c.jsonl")
    chosen = load_config(overrides=["data.calibration=c.jsonl", "data.validation_fraction=0.3"])
    assert held_out_roles(chosen, keep_fraction=True).data.validation_fraction == 0.3
    ner = held_out_roles(load_config(overrides=["task=token-classification", "data.calibration=c.conll"]))
    assert ner.data.train == ner.data.calibration == "c.conll"
    given = load_config(overrides=["data.train=t.jsonl", "data.calibration=c.jsonl"])
    assert held_out_roles(given) is given


def test_checkpoints_caveat_cannot_import_are_refused_with_the_fix(bert_checkpoint, tiny_backbone, tmp_path):
    with pytest.raises(ConfigError, match=r"holds a BertModel .*ForSequenceClassification .*ForTokenClassification"):
        run_import(tiny_backbone, tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json; point it at a folder written by save_pretrained"):
        run_import(tmp_path / "empty", tmp_path / "b")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(bert_checkpoint / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not read")  # never unpickled: refused by its name
    with pytest.raises(ConfigError, match=r"only as pytorch_model\.bin .*save_pretrained\(folder, safe_serialization"):
        run_import(pickled, tmp_path / "c")
    multi = tmp_path / "multi"
    shutil.copytree(bert_checkpoint, multi)
    config = json.loads((multi / "config.json").read_text())
    (multi / "config.json").write_text(json.dumps({**config, "problem_type": "multi_label_classification"}))
    with pytest.raises(ConfigError, match="multi_label_classification; caveat imports single-label"):
        run_import(multi, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_an_existing_out_is_kept_unless_force_replaces_a_run(bert_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"out='.*' exists and is not empty; choose another out, or .* with force"):
        run_import(bert_checkpoint, out)
    with pytest.raises(ConfigError, match="is not a caveat run"):
        run_import(bert_checkpoint, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    run_import(bert_checkpoint, tmp_path / "run")
    run_import(bert_checkpoint, tmp_path / "run", force=True, labels=["a", "b", "c"])
    assert open_run(tmp_path / "run").labels == ["a", "b", "c"]


def test_labels_must_match_the_data_and_count_the_classes(llama_checkpoint, held_out, tmp_path):
    calibration = str(held_out / "calibration.jsonl")
    with pytest.raises(DataError, match=r"labels the checkpoint does not have: \['first', .*Name .* with labels"):
        run_import(llama_checkpoint, tmp_path / "run", calibration=calibration)
    with pytest.raises(ConfigError, match=r"labels=\['x', 'y'\]: give 3 distinct, non-empty class names in id order"):
        run_import(llama_checkpoint, tmp_path / "run", labels=["x", "y"])


def test_an_unknown_family_runs_whole_and_says_efficient_mc_dropout_is_unavailable():
    from transformers import AlbertConfig, AlbertForSequenceClassification

    torch.manual_seed(0)
    config = AlbertConfig(
        vocab_size=40,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    hf = AlbertForSequenceClassification(config).eval()
    model = ImportedClassifier(hf, task=Task.TEXT_CLASSIFICATION)
    ids, mask = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        out = model(ids, mask)
        torch.testing.assert_close(out.logits, hf(input_ids=ids, attention_mask=mask).logits)
        torch.testing.assert_close(model.head(out.features), out.logits)
    with pytest.raises(ConfigError, match="efficient MC dropout .* is unavailable for it: use naive MC dropout"):
        model.pool_and_head(torch.zeros(2, 4, 16), mask)
    with pytest.raises(ConfigError, match="mixup is not supported for imported models"):
        model(ids, mask, mixup=(torch.tensor([1, 0]), 0.5))
