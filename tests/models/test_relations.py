"""Entity markers: special tokens, positions in input_ids, windows that keep both entities, entity features."""

from __future__ import annotations

import pytest
import torch

from caveat.data.markers import mark
from caveat.errors import ConfigError, DataError
from caveat.models.backbone import load_backbone
from caveat.models.relations import add_markers, encode_relations, entity_features, marker_ids, window
from tests.fakes import make_backbone


@pytest.fixture(scope="module")
def marked_tokenizer(tiny_backbone):
    tokenizer, encoder = load_backbone(str(tiny_backbone))
    before = encoder.get_input_embeddings().num_embeddings
    ids = add_markers(tokenizer, encoder)
    assert encoder.get_input_embeddings().num_embeddings == before + 4 == len(tokenizer)
    return tokenizer, ids


def test_offsets_become_markers_that_survive_tokenisation(marked_tokenizer):
    tokenizer, (e1, e2) = marked_tokenizer
    text = "the alice was then paris today"
    marked = mark(text, (4, 9), (19, 24))
    assert marked == "the <e1>alice</e1> was then <e2>paris</e2> today"
    row = encode_relations(tokenizer, [marked], 64, [2])[0]
    tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert tokens == ["[CLS]", "the", "<e1>", "alice", "</e1>", "was", "then", "<e2>", "paris", "</e2>", "today",
                      "[SEP]"]  # fmt: skip
    assert row["labels"] == 2
    assert row["input_ids"].index(e1) == 2 and row["input_ids"].index(e2) == 7


def test_markers_are_not_lower_cased_or_split(marked_tokenizer):
    tokenizer, _ = marked_tokenizer
    row = encode_relations(tokenizer, ["<e2>ROME</e2> and <e1>Bob</e1>"], 64)[0]
    assert tokenizer.convert_ids_to_tokens(row["input_ids"]) == [
        "[CLS]", "<e2>", "rome", "</e2>", "and", "<e1>", "bob", "</e1>", "[SEP]",
    ]  # fmt: skip


def test_truncation_keeps_both_entities(marked_tokenizer):
    tokenizer, (e1, e2) = marked_tokenizer
    filler = " ".join(["card"] * 30)
    text = f"{filler} the <e1>alice</e1> was then <e2>paris</e2> {filler}"
    row = encode_relations(tokenizer, [text], 16)[0]
    tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert len(tokens) == 16 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[tokens.index("<e1>") : tokens.index("</e2>") + 1] == [
        "<e1>", "alice", "</e1>", "was", "then", "<e2>", "paris", "</e2>",
    ]  # fmt: skip
    assert window(list(range(100)), [3, 5], 10) == 0
    assert window(list(range(100)), [95, 97], 10) == 90
    assert window(list(range(100)), [10, 30], 10) is None


def test_entities_further_apart_than_max_length_raise_naming_the_example(marked_tokenizer):
    tokenizer, _ = marked_tokenizer
    text = "<e1>alice</e1> " + " ".join(["card"] * 30) + " <e2>paris</e2>"
    with pytest.raises(DataError, match=r"train.jsonl:7: the two entities span more than the 14 tokens.*max_length"):
        encode_relations(tokenizer, [text], 16, where=["train.jsonl:7"])


def test_unmarked_input_and_unmarked_tokenizer_raise(marked_tokenizer, tiny_backbone):
    tokenizer, _ = marked_tokenizer
    with pytest.raises(DataError, match=r"text 1 \('the alice'\): the text has 0 '<e1>' markers.*Fix: mark"):
        encode_relations(tokenizer, ["the alice"], 16)
    plain, _ = load_backbone(str(tiny_backbone))
    with pytest.raises(ConfigError, match="no entity markers"):
        marker_ids(plain)


def test_entity_features_read_the_start_markers():
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # (B, T, D)
    input_ids = torch.tensor([[1, 7, 2, 8, 0], [1, 8, 2, 2, 7]])  # <e1> = 7, <e2> = 8
    out = entity_features(hidden, input_ids, (7, 8))
    assert out.shape == (2, 6)
    assert torch.equal(out[0], torch.cat([hidden[0, 1], hidden[0, 3]]))
    assert torch.equal(out[1], torch.cat([hidden[1, 4], hidden[1, 1]]))


def test_new_markers_start_from_the_punctuation_markers(tmp_path, tiny_backbone):
    """Zhou & Chen's ``@ head @`` / ``# tail #``: each new marker's row starts as its punctuation's embedding; a
    vocabulary without them (the tiny backbone's: '@' is [UNK]) keeps transformers' default rows."""
    tokenizer, encoder = load_backbone(str(make_backbone(tmp_path / "punct", ["@", "#"])))
    e1, e2 = add_markers(tokenizer, encoder)
    table = encoder.get_input_embeddings().weight
    at, hash_ = tokenizer.convert_tokens_to_ids(["@", "#"])
    end1, end2 = tokenizer.convert_tokens_to_ids(["</e1>", "</e2>"])
    assert torch.equal(table[e1], table[at]) and torch.equal(table[end1], table[at])
    assert torch.equal(table[e2], table[hash_]) and torch.equal(table[end2], table[hash_])

    tokenizer, encoder = load_backbone(str(tiny_backbone))
    e1, e2 = add_markers(tokenizer, encoder)
    table = encoder.get_input_embeddings().weight
    assert not torch.equal(table[e1], table[tokenizer.unk_token_id]) and not torch.equal(table[e1], table[e2])
