"""Entity markers for relation classification: special tokens, encoding that keeps both entities, positions.

The four markers ``<e1> </e1> <e2> </e2>`` become special tokens of the tokenizer (never split, never
lower-cased) with freshly added embeddings, and the classifier reads the hidden states at the two start
markers, concatenated (the "entity start" representation of Baldini Soares et al. 2019, "Matching the Blanks:
Distributional Similarity for Relation Learning", with the entity markers of Zhou & Chen 2022, "An Improved
Baseline for Sentence-level Relation Extraction"). The tokenizer, saved with the run, carries the markers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from caveat.data.markers import E1, E1_END, E2, E2_END, MARKERS, marker_problem
from caveat.errors import ConfigError, DataError

# The existing token each new marker's embedding starts from: the punctuation markers of Zhou & Chen 2022
# (``@ head @``, ``# tail #``), which did at least as well as new marker tokens there. Starting from a pretrained
# row gives the markers a meaning from the first step; the markers stay special tokens, so their positions are
# still found and the two start markers still differ.
MARKER_INIT = {E1: "@", E1_END: "@", E2: "#", E2_END: "#"}


def add_markers(tokenizer, encoder) -> tuple[int, int]:
    """Add the four markers to ``tokenizer`` as special tokens and resize ``encoder``'s embeddings to match.
    A new marker's row starts as the embedding of its ``MARKER_INIT`` punctuation when the tokenizer has that
    as one known token (else transformers' default, near the mean of the old rows). Returns the ids of ``<e1>``,
    ``<e2>``."""
    missing = [m for m in MARKERS if m not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)  # special: never split, never lower-cased
    if encoder.get_input_embeddings().num_embeddings < len(tokenizer):
        encoder.resize_token_embeddings(len(tokenizer))
    table = encoder.get_input_embeddings().weight  # (V, D)
    with torch.no_grad():
        for marker in missing:
            source = tokenizer(MARKER_INIT[marker], add_special_tokens=False)["input_ids"]
            if len(source) == 1 and source[0] != tokenizer.unk_token_id:
                table[tokenizer.convert_tokens_to_ids(marker)] = table[source[0]]
    return marker_ids(tokenizer)


def marker_ids(tokenizer) -> tuple[int, int]:
    """The token ids of ``<e1>`` and ``<e2>`` in a tokenizer that holds the markers (a relation run's)."""
    vocab = tokenizer.get_vocab()
    if E1 not in vocab or E2 not in vocab:
        raise ConfigError(
            "the tokenizer has no entity markers <e1>/<e2>: a relation-classification model needs the tokenizer "
            "saved with its run (retrain the run)"
        )
    return vocab[E1], vocab[E2]


def _frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (``[CLS]`` / ``[SEP]`` for BERT)."""
    cached = getattr(tokenizer, "_caveat_frame", None)
    if cached is None:
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a")["input_ids"]
        at = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), 0)
        cached = (full[:at], full[at + len(bare) :])
        tokenizer._caveat_frame = cached
    return cached


def window(ids: list[int], positions: Sequence[int], budget: int) -> int | None:
    """The start of a ``budget``-long window of ``ids`` that holds every position, centred on them as far as the
    text allows; None when they lie further apart than ``budget``."""
    if len(ids) <= budget:
        return 0
    first, last = min(positions), max(positions)
    if last - first + 1 > budget:
        return None
    start = first - (budget - (last - first + 1)) // 2
    return max(0, min(start, len(ids) - budget))


def encode_relations(
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    label_ids: Sequence[int] | None = None,
    *,
    where: Sequence[str] | None = None,
) -> list[dict]:
    """One dict per marked text: ``input_ids`` (list[int]) and, when given, ``labels`` (int).

    A text longer than ``max_length`` tokens is cut to a window that holds both entities with their markers
    (centred on them), never at a fixed side. ``where`` names each text in messages (``file:line``).

    Raises
    ------
    DataError
        A text not in the marked form, or whose entities lie further apart than ``max_length`` allows.
    """
    marker_ids(tokenizer)  # a tokenizer without the markers would split them into sub-words
    prefix, suffix = _frame(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    markers = [tokenizer.convert_tokens_to_ids(m) for m in MARKERS]
    rows = []
    for i, text in enumerate(texts):
        name = where[i] if where is not None else f"text {i + 1} ({text[:60]!r})"
        problem = marker_problem(text)
        if problem is not None:
            raise DataError(
                f"{name}: {problem}. Fix: mark the two entities as <e1>…</e1> and <e2>…</e2>, e.g. "
                "'The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>.'"
            )
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        start = window(ids, [ids.index(m) for m in markers], budget)
        if start is None:
            raise DataError(
                f"{name}: the two entities span more than the {budget} tokens that train.max_length={max_length} "
                f"leaves, so no window keeps both. Fix: raise train.max_length or shorten the text between them"
            )
        row = {"input_ids": prefix + ids[start : start + budget] + suffix}
        if label_ids is not None:
            row["labels"] = int(label_ids[i])
        rows.append(row)
    return rows


def entity_features(hidden: torch.Tensor, input_ids: torch.Tensor, entity_ids: tuple[int, int]) -> torch.Tensor:
    """(B, T, D) hidden states -> (B, 2D): the states at the ``<e1>`` and ``<e2>`` start markers, concatenated."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)  # (B,)
    first = (input_ids == entity_ids[0]).int().argmax(-1)  # (B,) position of <e1>
    second = (input_ids == entity_ids[1]).int().argmax(-1)  # (B,) position of <e2>
    return torch.cat([hidden[rows, first], hidden[rows, second]], dim=-1)  # (B, 2D)
