"""Slow: the default backbone on subsets of the real data in ../shared/data (make test-slow)."""

from __future__ import annotations

import pytest

from caveat.config import load_config
from caveat.evaluation.run import evaluate_run
from caveat.training.loop import Trainer

pytestmark = pytest.mark.slow


def test_sst2_subset_learns_sentiment(data_root, tmp_path):
    cfg = load_config("examples/sst2.yaml", [f"data.root={data_root}", "data.max_examples=1200", "train.epochs=2"])
    Trainer(cfg, tmp_path / "sst2", progress=False).fit()
    assert evaluate_run(tmp_path / "sst2", "test")["accuracy"] >= 0.78


def test_conll_subset_finds_entities(data_root, tmp_path):
    cfg = load_config(
        "examples/conll2003.yaml",
        [
            f"data.root={data_root}",
            "data.max_examples=1500",
            "train.epochs=2",
            "train.objective=fgm",
            "train.alpha=0.5",
        ],
    )
    Trainer(cfg, tmp_path / "ner", progress=False).fit()
    metrics = evaluate_run(tmp_path / "ner", "test")
    assert metrics["f1"] >= 0.6
    assert set(metrics["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
