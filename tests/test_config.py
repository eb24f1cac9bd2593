"""A config file and --set overrides are two spellings of one typed config."""

from __future__ import annotations

import pytest

from caveat.config import RunConfig, load_config, parse_overrides, valid_keys
from caveat.errors import ConfigError

REQUIRED_KEYS = [
    "data.root",
    "data.train",
    "data.validation",
    "data.test",
    "data.text_field",
    "data.label_field",
    "model.name_or_path",
    "train.objective",
    "train.alpha",
    "train.epochs",
    "train.batch_size",
    "train.lr",
    "train.max_length",
    "seed",
]


def test_the_documented_keys_exist():
    assert set(REQUIRED_KEYS) <= set(valid_keys())


def test_file_and_overrides_are_one_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  root: data\n  train: t.jsonl\ntrain:\n  lr: 0.001\n  adv:\n    epsilon: 0.5\n")
    cfg = load_config(path, ["train.lr=3e-5", "train.objective=pgd", "train.adv.steps=5", "data.ood={o: x.jsonl}"])
    assert cfg.train.lr == 3e-5 and cfg.train.objective == "pgd"
    assert cfg.train.adv.epsilon == 0.5 and cfg.train.adv.steps == 5
    assert cfg.data.root == str((tmp_path / "data").resolve())  # relative to the file
    assert cfg.data.ood == {"o": "x.jsonl"}
    same = load_config(
        overrides=[
            f"data.root={cfg.data.root}",
            "data.train=t.jsonl",
            "train.lr=3e-5",
            "train.objective=pgd",
            "train.adv.epsilon=0.5",
            "train.adv.steps=5",
            "data.ood={o: x.jsonl}",
        ]
    )
    assert same == cfg


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'train\.lrr'.*train\.lr"):
        parse_overrides(["train.lrr=1"])
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epoch'.*train\.epochs"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=-1", r"train\.lr=-1: Input should be greater than 0"),
        ("train.alpha=-0.5", r"train\.alpha=-0\.5: Input should be greater than or equal to 0"),
        ("train.batch_size=many", r"train\.batch_size='many'"),
        ("task=translation", r"task='translation'.*text-classification.*token-classification"),
        ("data.format=xml", r"data\.format='xml'.*jsonl"),
        (
            "train.objective=vat",
            r"unknown objective 'vat'; choose one of: consistency, distill, erm, fgm, freelb, mixup, pgd, rdrop",
        ),
    ],
)
def test_bad_values_name_the_value_and_the_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_override_without_equals_says_how():
    with pytest.raises(ConfigError, match="overrides 'train.lr' has no '='; write key=value"):
        parse_overrides(["train.lr"])


def test_defaults_are_a_complete_config():
    cfg = RunConfig()
    assert cfg.model.name_or_path == "default" and cfg.train.objective == "erm" and cfg.train.epochs == 3


def test_relative_data_paths_are_anchored_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(overrides=["data.root=data"]).data.root == str((tmp_path / "data").resolve())
    assert load_config(overrides=["data.train=t.jsonl"]).data.root == str(tmp_path.resolve())
