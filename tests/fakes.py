"""Tiny models and planted-rule data sets, built from a config on demand (never at import time)."""

from __future__ import annotations

import json
import random
from pathlib import Path

FILLER = [
    "the",
    "a",
    "my",
    "your",
    "please",
    "now",
    "today",
    "really",
    "just",
    "some",
    "this",
    "that",
    "it",
    "is",
    "was",
    "and",
    "or",
    "but",
    "then",
    "very",
    "quite",
] + [
    "card",
    "money",
    "order",
    "parcel",
    "account",
    "phone",
    "time",
    "help",
    "store",
    "city",
    "house",
    "cat",
    "dog",
    "tree",
    "road",
]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789")


def make_backbone(
    path: Path, words: list[str] = (), *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """A random BERT (``hidden`` wide, ``layers`` deep) with a word-piece vocabulary, saved as an HF folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(set(FILLER) | set(w.lower() for w in words)) + CHARS + ["##" + c for c in CHARS]
    vocab = list(dict.fromkeys(vocab))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


def planted_texts(n: int, seed: int, keywords: dict[str, str] | None = None) -> list[dict]:
    """Texts of 4-9 filler words with one keyword whose label is planted: keyword -> label."""
    keywords = keywords or {"alpha": "first", "beta": "second", "gamma": "third"}
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = rng.choice(sorted(keywords))
        words = rng.choices(FILLER, k=rng.randint(4, 9))
        words.insert(rng.randint(0, len(words)), word)
        rows.append({"text": " ".join(words), "label": keywords[word]})
    return rows


def planted_ner(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Sentences where 'alice'/'bob' are PER (one or two words) and 'paris'/'rome' are LOC; the rest O."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens = rng.choices(FILLER, k=rng.randint(3, 7))
        tags = ["O"] * len(tokens)
        for kind, names in (("PER", ["alice", "bob"]), ("LOC", ["paris", "rome"])):
            pos = rng.randint(0, len(tokens))
            ent = [rng.choice(names)] + (["smith"] if kind == "PER" and rng.random() < 0.5 else [])
            tokens[pos:pos] = ent
            tags[pos:pos] = [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
        out.append((tokens, tags))
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    path.write_text("\n\n".join("\n".join(f"{t} {g}" for t, g in zip(*s)) for s in sentences) + "\n", encoding="utf-8")
    return path


def make_causal_lm(
    path: Path,
    words: list[str] = (),
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """A random Llama-style causal LM with a word-level vocabulary, saved as an HF folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = list(dict.fromkeys(specials + sorted(set(FILLER) | set(words)) + [":", "?", "."]))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


class DistinctEncoder:
    """Stands in for the packaged MiniLM sentence encoder: a new direction for every text not seen before,
    so no two different texts mean the same."""

    def __init__(self, dim: int = 256) -> None:
        self.dim, self.seen = dim, {}

    def encode(self, texts):
        import numpy as np

        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            out[i, self.seen.setdefault(t, len(self.seen))] = 1.0
        return out


def planted_relations(n: int, seed: int) -> list[dict]:
    """Marked sentences of filler words and two entities (people alice/bob, places paris/rome), in either order in
    the text: ``Located(e1,e2)`` when <e1> is a person and <e2> a place, ``Located(e2,e1)`` the other way round,
    ``Other`` when both are people or both places."""
    people, places = ["alice", "bob"], ["paris", "rome"]
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kind = rng.choice(["e1-person", "e2-person", "same"])
        if kind == "same":
            pair = rng.sample(rng.choice([people, places]), 2)
            label = "Other"
        else:
            pair = [rng.choice(people), rng.choice(places)]
            label = "Located(e1,e2)"
            if kind == "e2-person":
                pair, label = pair[::-1], "Located(e2,e1)"
        words = rng.choices(FILLER, k=rng.randint(3, 8))
        first, second = sorted(rng.sample(range(len(words) + 1), 2))
        marked = [f"<e1>{pair[0]}</e1>", f"<e2>{pair[1]}</e2>"]
        if rng.random() < 0.5:
            marked = marked[::-1]  # <e2> may come first in the text
        words.insert(second, marked[1])
        words.insert(first, marked[0])
        rows.append({"text": " ".join(words), "label": label})
    return rows
