"""Tokenise examples once and pad batches on the fly.

For token classification, word tags are aligned to sub-words through ``word_ids()``: the first
sub-token of a word carries the word's tag, the other sub-tokens and the special tokens carry -100
(ignored by the loss). Word tags are never padded to the sub-word length.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import torch

from caveat.models.relations import encode_relations
from caveat.types import Task

IGNORE = -100


def encode_texts(
    tokenizer, texts: Sequence[str], max_length: int, label_ids: Sequence[int] | None = None
) -> list[dict]:
    """One dict per text: ``input_ids`` (list[int]) and, when given, ``labels`` (int)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    rows = [{"input_ids": ids} for ids in enc["input_ids"]]
    if label_ids is not None:
        for row, y in zip(rows, label_ids):
            row["labels"] = int(y)
    return rows


def encode_sequences(
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    label_ids: Sequence[int] | None = None,
    *,
    task: Task,
    where: Sequence[str] | None = None,
) -> list[dict]:
    """``encode_texts`` for text classification; for relation classification ``encode_relations`` (marked texts,
    truncated to a window that keeps both entities; ``where`` names each text in its errors)."""
    if Task(task) is Task.RELATION_CLASSIFICATION:
        return encode_relations(tokenizer, texts, max_length, label_ids, where=where)
    return encode_texts(tokenizer, texts, max_length, label_ids)


def encode_words(
    tokenizer, sentences: Sequence[Sequence[str]], max_length: int, tag_ids: Sequence[Sequence[int]] | None = None
) -> list[dict]:
    """One dict per sentence: ``input_ids``, ``word_index`` (word of each first sub-token, -1 elsewhere)
    and, when tags are given, ``labels`` aligned to sub-words (-100 except at first sub-tokens).

    Words cut off by ``max_length`` get no position; predictions for them fall back to ``O``. Tokenizers that
    lose word boundaries on pre-split words (byte-level BPE, as in GPT-2, Llama 3, SmolLM2: every word would be
    encoded as if it began the text) encode the words joined by spaces instead, mapped back by character offsets.
    """
    if splits_like_text(tokenizer):
        enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
        words_of = [enc.word_ids(i) for i in range(len(sentences))]
    else:
        enc, words_of = _encode_joined(tokenizer, sentences, max_length)
    rows = []
    for i, ids in enumerate(enc["input_ids"]):
        index, previous = [], None
        for w in words_of[i]:
            index.append(w if w is not None and w != previous else -1)
            previous = w
        row = {"input_ids": ids, "word_index": index}
        if tag_ids is not None:
            row["labels"] = [IGNORE if w < 0 else int(tag_ids[i][w]) for w in index]
        rows.append(row)
    return rows


def splits_like_text(tokenizer) -> bool:
    """Whether encoding pre-split words gives the ids of the same words as running text (WordPiece, SentencePiece
    with a prefix space: yes; byte-level BPE without ``add_prefix_space``: no)."""
    cached = getattr(tokenizer, "_caveat_splits_like_text", None)
    if cached is None:
        words = ["The", "pilot", "landed"]
        split = tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        cached = split == tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
        tokenizer._caveat_splits_like_text = cached
    return cached


def _encode_joined(tokenizer, sentences: Sequence[Sequence[str]], max_length: int):
    """Encode each sentence as its words joined by spaces; the word of each token is the word holding the
    token's last character (special tokens, with empty offsets, have none)."""
    texts, starts = [], []
    for words in sentences:
        firsts, pos = [], 0
        for word in words:
            firsts.append(pos)
            pos += len(word) + 1
        texts.append(" ".join(words))
        starts.append(firsts)
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    words_of = [
        [bisect_right(starts[i], end - 1) - 1 if end > begin else None for begin, end in offsets]
        for i, offsets in enumerate(enc["offset_mapping"])
    ]
    return enc, words_of


class Collator:
    """Pad a list of encoded rows to the longest in the batch: (B, T) tensors (``soft_labels``: (B, C) floats).

    Rows with a ``perturbed_input_ids`` view (``train.augment`` for ``train.objective=consistency``) add
    ``perturbed_input_ids`` and ``perturbed_attention_mask`` (B, T), padded to the same T as the clean rows so
    that the objective stacks both into one forward, and ``perturbed`` (B,) bool; a row without a view
    repeats its clean ids there, marked False.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        views = [r.get("perturbed_input_ids") for r in rows]
        seqs = [r["input_ids"] for r in rows]
        width = max(len(ids) for ids in seqs + [v for v in views if v is not None])
        batch = {"input_ids": self._ids(seqs, width), "attention_mask": self._mask(seqs, width)}
        if any(v is not None for v in views):
            filled = [ids if v is None else v for ids, v in zip(seqs, views)]
            batch["perturbed_input_ids"] = self._ids(filled, width)
            batch["perturbed_attention_mask"] = self._mask(filled, width)
            batch["perturbed"] = torch.tensor([v is not None for v in views])
        if "word_index" in rows[0]:
            batch["word_index"] = torch.tensor([r["word_index"] + [-1] * (width - len(r["word_index"])) for r in rows])
        if "labels" in rows[0]:
            first = rows[0]["labels"]
            if isinstance(first, list):
                batch["labels"] = torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows])
            else:
                batch["labels"] = torch.tensor([r["labels"] for r in rows])
        if "soft_labels" in rows[0]:  # a teacher's probabilities (train.objective=distill): (B, C)
            batch["soft_labels"] = torch.tensor([r["soft_labels"] for r in rows], dtype=torch.float32)
        return batch

    def _ids(self, seqs: list[list[int]], width: int) -> torch.Tensor:
        """(B, width) ids, right-padded with the pad token."""
        return torch.tensor([ids + [self.pad_token_id] * (width - len(ids)) for ids in seqs])

    @staticmethod
    def _mask(seqs: list[list[int]], width: int) -> torch.Tensor:
        """(B, width) attention mask: 1 on real tokens, 0 on padding."""
        return torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in seqs])
