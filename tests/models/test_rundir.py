"""A run directory holds no pickles, refuses to open when incomplete, and is written atomically."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors import safe_open

from caveat.config import load_config
from caveat.errors import RunDirError
from caveat.io import atomic_dir, write_json_atomic
from caveat.models.rundir import load_model, open_run
from caveat.training.loop import Trainer
from tests.conftest import tiny_overrides

PICKLE_STARTS = {bytes([0x80, protocol]) for protocol in range(2, 6)}


@pytest.fixture(scope="module")
def run_dir(tiny_backbone, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("rundir") / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=1)), out, progress=False).fit()
    return out


def test_run_dir_holds_no_pickles(run_dir):
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}]
    # By content too: torch.save writes a zip, a pickle starts with 0x80 and its protocol (2-5).
    # (safetensors files start with a header length, which may begin with 0x80: checked apart.)
    others = [p for p in files if p.suffix != ".safetensors"]
    assert not [p for p in others if p.read_bytes()[:4] == b"PK\x03\x04" or p.read_bytes()[:2] in PICKLE_STARTS]
    tensors = [p for p in files if p.suffix == ".safetensors"]
    assert {p.relative_to(run_dir).as_posix() for p in tensors} >= {"model/model.safetensors", "model/head.safetensors"}
    for path in tensors:
        with safe_open(str(path), framework="pt") as f:  # raises if the file is not safetensors
            assert list(f.keys())


def test_complete_run_opens_and_loads(run_dir):
    run = open_run(run_dir)
    assert run.labels == ["first", "second", "third"]
    tokenizer, model = load_model(run)
    assert not model.training
    assert tokenizer("alpha")["input_ids"][1] != tokenizer.unk_token_id


def test_missing_folder_says_it_does_not_exist(tmp_path):
    with pytest.raises(RunDirError, match=r"nowhere' is not a caveat run: it does not exist; .*caveat train .*--out"):
        open_run(tmp_path / "nowhere")


def test_folder_without_run_file_names_the_train_command(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(RunDirError, match=r"not a caveat run.*caveat train"):
        open_run(tmp_path)


def test_run_without_head_says_resume(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "model" / "head.safetensors").unlink()
    with pytest.raises(RunDirError, match=r"incomplete.*--resume"):
        open_run(copy)


def test_other_format_version_says_retrain(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    info = json.loads((copy / "caveat.json").read_text())
    (copy / "caveat.json").write_text(json.dumps({**info, "format_version": 999}))
    with pytest.raises(RunDirError, match=r"format_version 999.*retrain"):
        open_run(copy)


def test_run_dir_error_is_a_file_not_found_error(tmp_path):
    # Callers that catch FileNotFoundError (the CLI, scripts) also catch a missing run.
    with pytest.raises(FileNotFoundError):
        open_run(tmp_path)


class Boom(Exception):
    pass


def test_atomic_dir_keeps_old_folder_when_body_raises(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise Boom
    assert [p.name for p in target.iterdir()] == ["weights"]
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the temporary folder is gone


def test_atomic_dir_replaces_folder_as_a_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("new")
        assert not (target / "weights").exists()  # nothing visible until the body finished
    assert [p.name for p in target.iterdir()] == ["weights"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_write_json_atomic_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "info.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2, "text": "ünïcode"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2, "text": "ünïcode"}
    assert [p.name for p in path.parent.iterdir()] == ["info.json"]


def test_write_json_atomic_keeps_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "info.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["info.json"]
