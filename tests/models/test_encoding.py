"""encode_words puts each word's tag on its first sub-token only; Collator pads every field apart."""

from __future__ import annotations

import pytest
import torch

from caveat.models.encoding import IGNORE, Collator, encode_texts, encode_words


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_backbone)


def test_first_sub_token_carries_the_tag(tokenizer):
    # "zebra" is not in the vocabulary: z ##e ##b ##r ##a, five sub-tokens for one word.
    (row,) = encode_words(tokenizer, [["alice", "zebra", "cat"]], max_length=32, tag_ids=[[1, 2, 3]])
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert pieces == ["[CLS]", "alice", "z", "##e", "##b", "##r", "##a", "cat", "[SEP]"]
    assert row["word_index"] == [-1, 0, 1, -1, -1, -1, -1, 2, -1]
    assert row["labels"] == [IGNORE, 1, 2, IGNORE, IGNORE, IGNORE, IGNORE, 3, IGNORE]


def test_tag_of_a_repeated_word_is_not_dropped(tokenizer):
    # Two adjacent words with the same text are still two words (word_ids differ).
    (row,) = encode_words(tokenizer, [["cat", "cat"]], max_length=32, tag_ids=[[4, 5]])
    assert row["word_index"] == [-1, 0, 1, -1]
    assert row["labels"] == [IGNORE, 4, 5, IGNORE]


def test_without_tags_there_are_no_labels(tokenizer):
    (row,) = encode_words(tokenizer, [["alice", "zebra"]], max_length=32)
    assert "labels" not in row
    assert row["word_index"] == [-1, 0, 1, -1, -1, -1, -1, -1]


def test_truncation_drops_trailing_words(tokenizer):
    # 8 positions: [CLS] alice z ##e ##b ##r ##a [SEP]; "cat" and "dog" are cut off entirely.
    (row,) = encode_words(tokenizer, [["alice", "zebra", "cat", "dog"]], max_length=8, tag_ids=[[1, 2, 3, 4]])
    assert len(row["input_ids"]) == 8
    assert tokenizer.convert_ids_to_tokens(row["input_ids"])[-1] == "[SEP]"
    assert sorted(w for w in row["word_index"] if w >= 0) == [0, 1]
    assert 3 not in row["labels"] and 4 not in row["labels"]


def test_truncation_inside_a_word_keeps_its_first_sub_token(tokenizer):
    # 5 positions: [CLS] alice z ##e [SEP]; "zebra" keeps its tag on "z", "cat" is gone.
    (row,) = encode_words(tokenizer, [["alice", "zebra", "cat"]], max_length=5, tag_ids=[[1, 2, 3]])
    assert row["word_index"] == [-1, 0, 1, -1, -1]
    assert row["labels"] == [IGNORE, 1, 2, IGNORE, IGNORE]


def test_collator_pads_each_field_with_its_own_value(tokenizer):
    rows = encode_words(tokenizer, [["alice", "zebra"], ["cat"]], max_length=32, tag_ids=[[1, 2], [3]])
    pad = 99  # not 0, so padding with the wrong value would show
    batch = Collator(pad_token_id=pad)(rows)
    long, short = (len(r["input_ids"]) for r in rows)
    assert (long, short) == (8, 3)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        k: (2, long) for k in ("input_ids", "attention_mask", "word_index", "labels")
    }
    assert batch["input_ids"][0].tolist() == rows[0]["input_ids"]
    assert batch["input_ids"][1].tolist() == rows[1]["input_ids"] + [pad] * (long - short)
    assert batch["attention_mask"].tolist() == [[1] * long, [1] * short + [0] * (long - short)]
    assert batch["word_index"][1].tolist() == [-1, 0, -1] + [-1] * (long - short)
    assert batch["labels"][1].tolist() == [IGNORE, 3, IGNORE] + [IGNORE] * (long - short)


def test_collator_keeps_sequence_labels_one_per_row(tokenizer):
    rows = encode_texts(tokenizer, ["alice zebra", "cat"], max_length=32, label_ids=[2, 0])
    batch = Collator(pad_token_id=tokenizer.pad_token_id)(rows)
    assert batch["labels"].tolist() == [2, 0]
    assert batch["labels"].dtype == torch.long
    assert "word_index" not in batch
    assert batch["attention_mask"].sum(1).tolist() == [len(r["input_ids"]) for r in rows]


@pytest.fixture(scope="module")
def byte_level_tokenizer():
    """A tiny byte-level BPE (GPT-2 / Llama 3 / SmolLM2 style): a word after a space is a different token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["the pilot landed the plane in rome", "alice met bob in paris"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def test_byte_level_words_are_encoded_as_running_text(byte_level_tokenizer, tokenizer):
    from caveat.models.encoding import splits_like_text

    assert splits_like_text(tokenizer) and not splits_like_text(byte_level_tokenizer)
    words = ["alice", "met", "bob", "in", "zurich"]
    (row,) = encode_words(byte_level_tokenizer, [words], max_length=64, tag_ids=[[1, 0, 1, 0, 2]])
    assert row["input_ids"] == byte_level_tokenizer(" ".join(words))["input_ids"]  # as running text, not word by word
    pieces = byte_level_tokenizer.convert_ids_to_tokens(row["input_ids"])
    firsts = [i for i, w in enumerate(row["word_index"]) if w >= 0]
    assert [row["word_index"][i] for i in firsts] == [0, 1, 2, 3, 4]
    assert "".join(pieces[firsts[-1] :]).replace("Ġ", "") == "zurich"  # unknown word: several pieces, one tag
    assert [row["labels"][i] for i in firsts] == [1, 0, 1, 0, 2]
    assert sum(label != IGNORE for label in row["labels"]) == len(words)
