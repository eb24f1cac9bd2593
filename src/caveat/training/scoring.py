"""Encoding of splits and their scoring, shared by the training loop and ``caveat evaluate``."""

from __future__ import annotations

import numpy as np

from caveat.evaluation.metrics import metrics_for
from caveat.inference import iter_outputs, word_logits
from caveat.models.encoding import encode_sequences, encode_words
from caveat.types import Split, Task


def encode_split(tokenizer, split: Split, label_map, task: Task, max_length: int) -> list[dict]:
    """Tokenise a labelled split once; rows carry ``labels`` ids (aligned to sub-words for tokens)."""
    where = split.source
    if Task(task) is Task.TOKEN_CLASSIFICATION:
        tags = [[label_map.to_id(t, where=f"{where}:{ex.line}") for t in ex.tags] for ex in split.examples]
        return encode_words(tokenizer, [ex.tokens for ex in split.examples], max_length, tags)
    ids = [label_map.to_id(ex.label, where=f"{where}:{ex.line}") for ex in split.examples]
    texts = [ex.text for ex in split.examples]
    return encode_sequences(
        tokenizer, texts, max_length, ids, task=task, where=[f"{where}:{ex.line}" for ex in split.examples]
    )


def score_outputs(model, loader, accelerator, label_map, task: Task, split: Split) -> dict:
    """Run ``model`` over a prepared loader of ``split`` (gathered across processes) and score it."""
    logits, words = [], []
    for out in iter_outputs(model, loader, accelerator):
        if Task(task) is Task.TOKEN_CLASSIFICATION:
            for k in range(out["logits"].shape[0]):
                n = len(split.examples[len(words)].tokens)
                words.append(word_logits(out["logits"][k], out["word_index"][k], n)[0])
        else:
            logits.append(out["logits"])
    if Task(task) is Task.TOKEN_CLASSIFICATION:
        return metrics_for(task, split, label_map.labels, word_logits=words)
    return metrics_for(task, split, label_map.labels, logits=np.concatenate(logits))


def split_summary(splits) -> dict:
    """Per split: where it came from, how many examples, how many records were skipped."""
    items = {
        "train": splits.train,
        "validation": splits.validation,
        "calibration": splits.calibration,
        "test": splits.test,
        **splits.extra,
    }
    return {name: {"source": s.source, "n": len(s), "skipped": s.skipped} for name, s in items.items() if s is not None}
