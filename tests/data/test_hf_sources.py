"""``hf:`` sources: save_to_disk folders, parquet and arrow files, Hub names (never the network), errors."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")

from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value  # noqa: E402

from caveat.config import load_config  # noqa: E402
from caveat.data import read_split  # noqa: E402
from caveat.data.load import load_data, resolve_path  # noqa: E402
from caveat.data.resolve import ood_texts, resolve_split  # noqa: E402
from caveat.errors import ConfigError, DataError  # noqa: E402
from caveat.types import Task, TextExample, TokenExample  # noqa: E402

TEXT = Task.TEXT_CLASSIFICATION
TOKENS = Task.TOKEN_CLASSIFICATION

# The GLUE SST-2 layout: the text is `sentence`, the label a ClassLabel, then an int `idx`.
SST2 = Features(
    {"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")}
)
# The CoNLL-2003 layout on the Hub: tags are ints with ClassLabel names, pos_tags before ner_tags.
CONLL = Features(
    {
        "id": Value("string"),
        "tokens": Sequence(Value("string")),
        "pos_tags": Sequence(ClassLabel(names=["NN", "VB"])),
        "ner_tags": Sequence(ClassLabel(names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])),
    }
)


def sst2(texts: list[str], labels: list[int]) -> Dataset:
    return Dataset.from_dict({"sentence": texts, "label": labels, "idx": list(range(len(texts)))}, features=SST2)


def conll() -> Dataset:
    rows = {
        "id": ["0", "1"],
        "tokens": [["Peter", "Blackburn", "runs"], ["Paris"]],
        "pos_tags": [[0, 0, 1], [0]],
        "ner_tags": [[1, 2, 0], [3]],
    }
    return Dataset.from_dict(rows, features=CONLL)


def sst2_dict(folder: Path) -> Path:
    """A save_to_disk DatasetDict with train (4 rows) and test (2 rows, GLUE-style -1 labels)."""
    splits = {"train": sst2(["good", "bad", "great", "awful"], [1, 0, 1, 0]), "test": sst2(["fine", "meh"], [-1, -1])}
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def read(spec: str | Path, task: Task = TEXT, **kwargs):
    return read_split(spec, name="train", task=task, **kwargs)


# --- good sources ----------------------------------------------------------------------


def test_save_to_disk_dataset_gives_classlabel_names(tmp_path):
    sst2(["good", "bad"], [1, 0]).save_to_disk(str(tmp_path / "sst2"))
    split = read(f"hf:{tmp_path / 'sst2'}", text_field="sentence")
    assert split.source == f"hf:{tmp_path / 'sst2'}" and split.skipped == 0
    assert split.examples == [TextExample("good", "positive", 1), TextExample("bad", "negative", 2)]


def test_dataset_dict_split_is_picked_with_hash(tmp_path):
    folder = sst2_dict(tmp_path / "sst2")
    split = read(f"hf:{folder}#train", text_field="sentence")
    assert [(e.text, e.label) for e in split.examples] == [
        ("good", "positive"),
        ("bad", "negative"),
        ("great", "positive"),
        ("awful", "negative"),
    ]


def test_minus_one_labels_are_none_when_unlabelled_and_an_error_when_labelled(tmp_path):
    folder = sst2_dict(tmp_path / "sst2")
    split = read(f"hf:{folder}#test", text_field="sentence", labelled=False)
    assert split.examples == [TextExample("fine", None, 1), TextExample("meh", None, 2)]
    with pytest.raises(DataError, match=r"#test:1: label is null\. Fix: give every example a label"):
        read(f"hf:{folder}#test", text_field="sentence")


def test_parquet_tokens_with_sequence_classlabel_tags(tmp_path):
    conll().to_parquet(str(tmp_path / "conll.parquet"))
    split = read(f"hf:{tmp_path / 'conll.parquet'}", TOKENS, tags_field="ner_tags")
    assert split.examples == [
        TokenExample(("Peter", "Blackburn", "runs"), ("B-PER", "I-PER", "O"), 1),
        TokenExample(("Paris",), ("B-LOC",), 2),
    ]


def test_string_tags_are_converted_from_iob1(tmp_path):
    Dataset.from_dict({"tokens": [["EU", "rejects"]], "tags": [["I-ORG", "O"]]}).to_parquet(str(tmp_path / "t.parquet"))
    assert read(f"hf:{tmp_path / 't.parquet'}", TOKENS).examples == [TokenExample(("EU", "rejects"), ("B-ORG", "O"), 1)]


def test_arrow_file_of_save_to_disk(tmp_path):
    conll().save_to_disk(str(tmp_path / "conll"))
    (arrow,) = (tmp_path / "conll").glob("*.arrow")
    split = read(f"hf:{arrow}", TOKENS, tags_field="ner_tags")
    assert [e.tags for e in split.examples] == [("B-PER", "I-PER", "O"), ("B-LOC",)]


def test_arrow_file_written_with_pyarrow_random_access_format(tmp_path):
    table = sst2(["good", "bad"], [1, 0]).data.table  # keeps the ClassLabel names in the schema metadata
    path = tmp_path / "sst2.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert [e.label for e in read(f"hf:{path}", text_field="sentence").examples] == ["positive", "negative"]


def test_max_examples_skip_invalid_and_the_prefix_wins_over_data_format(tmp_path):
    Dataset.from_dict({"text": ["a", "", "c", "d"], "label": ["x", "y", "x", "y"]}).save_to_disk(str(tmp_path / "d"))
    split = read(f"hf:{tmp_path / 'd'}", fmt="csv", skip_invalid=True, max_examples=2)
    assert [e.text for e in split.examples] == ["a", "c"] and split.skipped == 1
    with pytest.raises(DataError, match=r"hf:.*d:2: empty text"):
        read(f"hf:{tmp_path / 'd'}")


# --- errors ------------------------------------------------------------------------------


def test_dataset_dict_without_split_names_the_splits_and_the_fix(tmp_path):
    folder = sst2_dict(tmp_path / "sst2")
    with pytest.raises(DataError, match=r"holds several splits \('train', 'test'\)\. Fix: .*e\.g\. hf:.*sst2#train"):
        read(f"hf:{folder}", text_field="sentence")
    with pytest.raises(DataError, match=r"no split 'dev' \(splits: 'train', 'test'\)"):
        read(f"hf:{folder}#dev", text_field="sentence")


def test_split_on_a_single_split_source_is_an_error(tmp_path):
    sst2(["good"], [1]).save_to_disk(str(tmp_path / "one"))
    sst2(["good"], [1]).to_parquet(str(tmp_path / "one.parquet"))
    with pytest.raises(DataError, match=r"'#train' selects a split of a DatasetDict.*single Dataset.*remove the '#"):
        read(f"hf:{tmp_path / 'one'}#train", text_field="sentence")
    with pytest.raises(DataError, match=r"a \.parquet file holds one split\. Fix: remove the '#"):
        read(f"hf:{tmp_path / 'one.parquet'}#train", text_field="sentence")


def test_wrong_text_field_names_columns_and_suggests_a_string_column(tmp_path):
    sst2(["good"], [1]).to_parquet(str(tmp_path / "sst2.parquet"))
    pattern = (
        r"no column 'text' \(columns: 'sentence' \(string\), 'label' \(ClassLabel\), 'idx' \(int32\)\)\. "
        r"Fix: name the column with --set data\.text_field=<column>, e\.g\. --set data\.text_field=sentence$"
    )
    with pytest.raises(DataError, match=pattern):
        read(f"hf:{tmp_path / 'sst2.parquet'}")


def test_wrong_tags_field_suggests_the_entity_tags(tmp_path):
    conll().to_parquet(str(tmp_path / "conll.parquet"))
    with pytest.raises(DataError, match=r"no column 'tags' .*'ner_tags' \(list of ClassLabel\).*tags_field=ner_tags$"):
        read(f"hf:{tmp_path / 'conll.parquet'}", TOKENS)


def test_missing_path_folder_and_extension_errors(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "data.jsonl").write_text('{"text": "a", "label": "b"}\n')
    with pytest.raises(DataError, match=r"file or folder not found\. Fix: check the path"):
        read(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match=r"not a datasets save_to_disk folder.*Fix: save the data with"):
        read(f"hf:{tmp_path / 'plain'}")
    with pytest.raises(DataError, match=r"not \.jsonl\. Fix: drop the hf: prefix"):
        read(f"hf:{tmp_path / 'data.jsonl'}")


def test_hub_name_offline_says_no_local_path_and_hub_unreachable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def offline(*args, **kwargs):
        # What datasets raises with HF_HUB_OFFLINE=1 or without a network.
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    pattern = (
        r"^hf:nyu-mll/glue:sst2#train: there is no local file or folder 'nyu-mll/glue:sst2' .*"
        r"the Hugging Face Hub is unreachable \(Couldn't reach .*\)\. Fix: give the path of a save_to_disk folder .*"
        r"or read hf:nyu-mll/glue:sst2#train once where the Hub is reachable"
    )
    with pytest.raises(DataError, match=pattern):
        read("hf:nyu-mll/glue:sst2#train", text_field="sentence")


def test_hub_name_unknown_on_the_hub_names_the_call_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def not_found(*args, **kwargs):
        raise datasets.exceptions.DatasetNotFoundError("Dataset 'me/nope' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", not_found)
    pattern = (
        r"no local file or folder 'me/nope', and load_dataset\('me/nope', None, split='train'\) failed: "
        r"Dataset 'me/nope' doesn't exist.*Fix: check the path, or the Hub id, the config after ':'"
    )
    with pytest.raises(DataError, match=pattern):
        read("hf:me/nope#train")


def test_hub_name_config_and_split_go_to_load_dataset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        data = sst2(["good"], [1])
        return data if split is not None else DatasetDict({"train": data, "validation": data})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert read("hf:nyu-mll/glue:sst2#train", text_field="sentence").examples == [TextExample("good", "positive", 1)]
    read("hf:imdb#test[:10]", text_field="sentence")
    with pytest.raises(DataError, match=r"several splits \('train', 'validation'\).*e\.g\. hf:glue#train"):
        read("hf:glue", text_field="sentence")
    assert calls == [("nyu-mll/glue", "sst2", "train"), ("imdb", None, "test[:10]"), ("glue", None, None)]


def test_datasets_not_installed_says_pip_install_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(ConfigError, match=r"needs the `datasets` package.*pip install 'caveat\[hf\]'"):
        read(f"hf:{tmp_path / 'x.parquet'}")


# --- paths, config and the workflows' resolvers -------------------------------------------


def test_resolve_path_joins_local_paths_to_root_but_not_hub_names(tmp_path):
    sst2_dict(tmp_path / "sst2")
    root = str(tmp_path)
    assert resolve_path("hf:sst2#train", root) == f"hf:{tmp_path / 'sst2'}#train"  # exists under root
    assert resolve_path("hf:glue:sst2#train", root) == "hf:glue:sst2#train"  # a Hub name
    assert resolve_path("hf:nyu-mll/glue", root) == "hf:nyu-mll/glue"
    assert resolve_path("hf:data/x.parquet", root) == f"hf:{tmp_path / 'data' / 'x.parquet'}"  # cannot be a Hub id
    assert resolve_path("hf:./missing", root) == f"hf:{tmp_path / 'missing'}"
    assert resolve_path("hf:/abs/folder#test", root) == "hf:/abs/folder#test"
    assert resolve_path("hf:glue", None) == "hf:glue"


def test_load_data_end_to_end_through_load_config(tmp_path):
    sst2_dict(tmp_path / "sst2")
    Dataset.from_dict({"sentence": ["what is love"], "label": ["oos"]}).to_parquet(str(tmp_path / "oos.parquet"))
    config = load_config(
        overrides=[
            f"data.root={tmp_path}",
            "data.train=hf:sst2#train",
            "data.validation=hf:sst2#train",
            "data.ood={oos: hf:oos.parquet}",
            "data.text_field=sentence",
        ]
    )
    splits = load_data(config)
    assert [e.label for e in splits.train.examples] == ["positive", "negative", "positive", "negative"]
    assert splits.train.source == f"hf:{tmp_path / 'sst2'}#train"
    assert [e.text for e in splits.extra["oos"].examples] == ["what is love"]


def test_evaluate_and_ood_resolvers_take_hf_sources(tmp_path, monkeypatch):
    sst2_dict(tmp_path / "sst2")
    Dataset.from_dict({"sentence": ["what is love"]}).to_parquet(str(tmp_path / "oos.parquet"))
    monkeypatch.chdir(tmp_path)  # command-line paths are relative to the working directory
    config = load_config(overrides=["data.train=hf:sst2#train", "data.text_field=sentence"])
    run = SimpleNamespace(config=config, task=TEXT, labels=["negative", "positive"], info={})
    assert [e.text for e in resolve_split(run, "hf:sst2#train").examples] == ["good", "bad", "great", "awful"]
    assert ood_texts(run, "hf:oos.parquet") == ["what is love"]
