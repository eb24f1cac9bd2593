"""The report's overview names the backbone as the model it is, not as the config's alias."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from caveat.config import load_config
from caveat.report.sections.overview import data_and_training
from caveat.types import Task


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("default", "sentence-transformers/all-MiniLM-L6-v2"),
        ("default-lm", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("/models/mine", "/models/mine"),
    ],
)
def test_backbone_is_named_as_the_model_it_is(tmp_path, name, shown):
    cfg = load_config(overrides=[f"model.name_or_path={name}"])
    split = type("Split", (), {"skipped": 0, "source": "test.jsonl", "__len__": lambda self: 3})()
    ctx = SimpleNamespace(
        run=SimpleNamespace(config=cfg, info={"data": {"splits": {"test": {"n": 3}}}}, path=tmp_path),
        task=Task.TEXT_CLASSIFICATION,
        labels=["a", "b"],
        data="test",
        split=split,
        ood_sources={},
    )
    assert data_and_training(ctx).metric("backbone") == shown
