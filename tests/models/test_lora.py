"""Decoder backbones and LoRA: last-token pooling, adapters that train alone, save, load and refuse a wrong
base, adversarial objectives through frozen embeddings, and LoRA ensembles on one base in memory."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from caveat.config import load_config
from caveat.errors import ConfigError, RunDirError
from caveat.inference import Predictor, ensemble_predict
from caveat.models.build import build_model
from caveat.models.classifier import CaveatModel
from caveat.models.rundir import load_model, open_run, save_model, write_run_info
from caveat.training.ensemble import train_ensemble
from caveat.training.loop import Trainer
from caveat.types import Task
from tests.conftest import one_thread, tiny_overrides

TEXTS = ["alpha the my", "beta a", "gamma the a my the", "the alpha"]


def lora_overrides(decoder, data, **train) -> list[str]:
    return tiny_overrides(decoder, data, **train) + ["model.peft.method=lora", "model.peft.r=4", "train.lr=1e-2"]


@pytest.fixture(scope="module")
def lora_run(tiny_decoder, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    with one_thread():
        Trainer(load_config(overrides=lora_overrides(tiny_decoder, text_data, epochs=6)), out, progress=False).fit()
    return out


class _Echo(torch.nn.Module):
    """A stand-in backbone whose hidden state at position t is t (to see which position pooling picks)."""

    config = type("Config", (), {"hidden_size": 1, "model_type": "llama"})()

    def get_input_embeddings(self):
        return torch.nn.Embedding(10, 1)


def test_last_token_pooling_picks_the_last_real_token_under_left_and_right_padding():
    model = CaveatModel(_Echo(), 2, task=Task.TEXT_CLASSIFICATION, pooling="auto")
    assert model.pooling == "last"  # auto: llama is a decoder
    hidden = torch.arange(6, dtype=torch.float32).view(1, 6, 1).repeat(3, 1, 1)  # (3, 6, 1): value = position
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])  # right, left, no padding
    features, _ = model.pool_and_head(hidden, mask)
    assert features[:, 0].tolist() == [2.0, 5.0, 5.0]


def test_right_padded_batch_gives_each_text_its_own_features(tiny_decoder):
    cfg = load_config(overrides=[f"model.name_or_path={tiny_decoder}", "model.peft.method=lora"]).model
    tokenizer, model, base = build_model(cfg, Task.TEXT_CLASSIFICATION, 3)
    assert model.pooling == "last" and base["sha256"]
    predictor = Predictor(model, tokenizer, ["a", "b", "c"], Task.TEXT_CLASSIFICATION, batch_size=4)
    batched = predictor.predict(TEXTS).features  # padded to the longest
    alone = np.concatenate([predictor.predict([t]).features for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert len({round(float(v), 5) for v in batched[:, 0]}) == len(TEXTS)  # not all the same position


def test_only_adapter_and_head_parameters_train(tiny_decoder):
    cfg = load_config(overrides=[f"model.name_or_path={tiny_decoder}", "model.peft.method=lora"]).model
    _, model, _ = build_model(cfg, Task.TEXT_CLASSIFICATION, 3)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen > 10 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_adapter_saves_loads_and_reproduces_logits(tiny_decoder, tmp_path):
    cfg = load_config(overrides=[f"model.name_or_path={tiny_decoder}", "model.peft.method=lora"])
    tokenizer, model, base = build_model(cfg.model, Task.TEXT_CLASSIFICATION, 3)
    torch.manual_seed(0)
    with torch.no_grad():  # a non-zero adapter (LoRA's B starts at zero) and head
        for name, p in model.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.normal_(0, 0.5)
    before = Predictor(model, tokenizer, ["a", "b", "c"], Task.TEXT_CLASSIFICATION).predict(TEXTS).logits
    save_model(tmp_path, model, tokenizer)
    write_run_info(tmp_path, config=cfg, labels=["a", "b", "c"], data={}, base=base)
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "head.safetensors"} <= files
    assert "model.safetensors" not in files  # the base is not copied into the run
    after = Predictor.from_run(tmp_path, calibrated=False).predict(TEXTS).logits
    np.testing.assert_allclose(after, before, atol=1e-5)
    without = Predictor(
        CaveatModel(model.encoder.get_base_model(), 3, task=Task.TEXT_CLASSIFICATION),
        tokenizer,
        "abc",
        Task.TEXT_CLASSIFICATION,
    )
    assert not np.allclose(without.predict(TEXTS).logits, before, atol=1e-3)


def test_loading_on_a_changed_base_is_refused(tiny_decoder, lora_run, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_decoder, base)
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    info = open_run(run).info
    info["base"]["name_or_path"] = str(base)
    (run / "caveat.json").write_text(__import__("json").dumps(info))
    load_model(open_run(run))  # same weights: loads
    weights = base / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # another base with the same name
    weights.write_bytes(bytes(data))
    with pytest.raises(RunDirError, match=r"sha256 .*restore that base model .*or retrain"):
        load_model(open_run(run))


def test_lora_run_learns_the_planted_rule_and_keeps_only_the_adapter(lora_run):
    run = open_run(lora_run)
    assert run.info["training"]["best_validation"] >= 0.9
    assert run.info["base"]["sha256"]
    probs = Predictor.from_run(lora_run, calibrated=False).predict(["alpha the", "beta my", "gamma a"]).probs[0]
    assert probs.argmax(-1).tolist() == [0, 1, 2]


def test_fgm_trains_through_frozen_embeddings(tiny_decoder, text_data, tmp_path):
    overrides = lora_overrides(tiny_decoder, text_data, epochs=1, objective="fgm")
    with one_thread():
        summary = Trainer(load_config(overrides=overrides), tmp_path / "fgm", progress=False).fit()
    assert summary["steps"] > 0 and np.isfinite(summary["best_validation"])


def test_unknown_target_modules_name_the_linear_layers(tiny_decoder):
    cfg = load_config(
        overrides=[f"model.name_or_path={tiny_decoder}", "model.peft.method=lora", "model.peft.target_modules=[nope]"]
    ).model
    with pytest.raises(ConfigError, match=r"target_modules=\['nope'\].*q_proj|target_modules=\['nope'\].*proj"):
        build_model(cfg, Task.TEXT_CLASSIFICATION, 3)


def test_mc_dropout_samples_lora_dropout_in_the_top_layers(lora_run):
    predictor = Predictor.from_run(lora_run, calibrated=False)
    preds = predictor.predict(TEXTS, samples=4, top_layers=1)
    assert preds.probs.shape == (4, len(TEXTS), 3)
    assert preds.probs.std(0).max() > 0


def test_lora_ensemble_members_share_one_base_and_match_their_own_runs(tiny_decoder, text_data, tmp_path):
    out = tmp_path / "ens"
    with one_thread():
        train_ensemble(load_config(overrides=lora_overrides(tiny_decoder, text_data, epochs=2)), out, 3, progress=False)
    members = Predictor.from_run(out, calibrated=False).ensemble()
    assert len(members) == 3
    assert all(m.model.encoder is members[0].model.encoder for m in members)  # one base in memory
    stacked = ensemble_predict(members, TEXTS)
    assert stacked.probs.shape == (3, len(TEXTS), 3)
    assert not np.allclose(stacked.logits[0], stacked.logits[1], atol=1e-4)  # different adapters and heads
    for i, member in enumerate(("members/1", "members/2"), start=1):
        alone = Predictor.from_run(out / member, calibrated=False).predict(TEXTS).logits[0]
        np.testing.assert_allclose(stacked.logits[i], alone, atol=1e-5)
    np.testing.assert_allclose(members[0].predict(TEXTS).logits[0], stacked.logits[0], atol=1e-5)  # switched back

    from benchmarks.llm import ensemble_memory  # the lora_clinc150 benchmark's memory figure, on this run

    memory = ensemble_memory(out)
    params = dict(members[0].model.named_parameters())  # every member's adapter now sits on the one base
    size = {n: p.numel() * p.element_size() for n, p in params.items()}
    adapter = {name: sum(v for n, v in size.items() if f".{name}." in n) for name in ("default", "member1")}
    base = sum(v for n, v in size.items() if "lora_" not in n and not n.startswith("head."))
    head = sum(v for n, v in size.items() if n.startswith("head."))
    assert memory["members"] == 3 and memory["parameter_bytes_one"] == base + adapter["default"] + head
    # the base once, plus each other member's adapter and head (equal in size to member 0's)
    assert memory["parameter_bytes_ensemble"] == memory["parameter_bytes_one"] + 2 * (adapter["member1"] + head)


def test_efficient_mc_dropout_on_a_decoder_applies_its_final_norm(lora_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    predictor = Predictor.from_run(run, calibrated=False)
    for module in predictor.model.modules():  # no dropout anywhere: the samples must equal the deterministic pass
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    sampled = predictor.predict(TEXTS, samples=2, top_layers=1).logits
    np.testing.assert_allclose(sampled[0], predictor.predict(TEXTS).logits[0], atol=1e-5)


def test_a_lora_run_calibrates_and_decides_like_any_run(lora_run, tmp_path):
    import caveat

    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    with one_thread():
        model = caveat.load(run).calibrate(target_risk=0.2, alpha=0.2)
        out = model.predict(["alpha the", "beta my"])
    assert [row.label for row in out] == ["first", "second"]
    assert all(row.decision in ("answer", "abstain", "route") for row in out)
    assert caveat.load(run).calibrated  # saved with the run, adapter and all


class _Interrupt(Exception):
    pass


def test_a_resumed_lora_run_ends_where_an_uninterrupted_one_ends(tiny_decoder, text_data, tmp_path):
    from safetensors.torch import load_file

    cfg = load_config(overrides=lora_overrides(tiny_decoder, text_data, epochs=2, checkpoint_every=5))

    def stop_at_seven(state, stats):
        if state.global_step == 7:
            raise _Interrupt

    with one_thread():
        Trainer(cfg, tmp_path / "full", progress=False).fit()
        with pytest.raises(_Interrupt):
            Trainer(cfg, tmp_path / "resumed", progress=False, callbacks=[stop_at_seven]).fit()
        saved = load_file(str(tmp_path / "resumed" / "checkpoint" / "model.safetensors"))
        assert saved and all("lora_" in k or k.startswith("head.") or "rotary" in k for k in saved)  # no base
        Trainer(cfg, tmp_path / "resumed", progress=False).fit(resume=True)
    for name in ("adapter_model.safetensors", "head.safetensors"):
        full = load_file(str(tmp_path / "full" / "model" / name))
        resumed = load_file(str(tmp_path / "resumed" / "model" / name))
        for key in full:
            torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=1e-6)
