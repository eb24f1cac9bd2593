"""A backbone plus a linear head, for sequences (pooled) and tokens.

Everything a training objective needs goes through ``forward`` (perturbations, mixup, kept
embeddings), so that a DDP-wrapped model synchronises gradients the same way for every objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from caveat.models.backbone import is_decoder
from caveat.models.relations import entity_features
from caveat.types import Task


def last_token_index(
    attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None, pad_token_id: int | None = None
) -> torch.Tensor:
    """(B,) index of the rightmost token that is attended and, when ``pad_token_id`` is set, not padding (left or
    right padding alike): what a decoder's classifier reads (transformers' take the rightmost ``input_ids !=
    pad_token_id``)."""
    keep = attention_mask.long()
    if input_ids is not None and pad_token_id is not None:
        keep = keep * (input_ids != pad_token_id).long()
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return (keep * positions).argmax(-1)  # (B,)


def embed(encoder: nn.Module, input_ids: torch.Tensor, keep_embeddings: bool) -> torch.Tensor:
    """The (B, T, D) word embeddings; with ``keep_embeddings`` (and grad on), their gradient is kept after
    ``backward`` (FGM/PGD reuse the clean pass's gradient): retained when they require grad, else (frozen
    embeddings, as under LoRA) made a leaf that requires grad."""
    embeds = encoder.get_input_embeddings()(input_ids)  # (B, T, D)
    if keep_embeddings and torch.is_grad_enabled():
        if embeds.requires_grad:
            embeds.retain_grad()
        else:
            embeds.requires_grad_(True)
    return embeds


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, C) or (B, T, C)
    features: torch.Tensor  # (B, D) pooled, or (B, T, D) per token
    embeddings: torch.Tensor | None = None  # (B, T, D) word embeddings when keep_embeddings=True
    mixed_logits: torch.Tensor | None = None  # (B, C) when mixup is asked for


class CaveatModel(nn.Module):
    """``encoder`` (a Hugging Face ``AutoModel``) + dropout + ``Linear(D, C)``.

    Parameters
    ----------
    encoder : a transformers model returning ``last_hidden_state`` and accepting ``inputs_embeds``.
    num_labels : C.
    task : sequence or token classification.
    pooling : ``"mean"`` (masked mean; what sentence-embedding backbones are trained for), ``"cls"``, ``"last"``
        (the last non-padding token, under left or right padding: what a decoder's causal attention needs) or
        ``"auto"`` (``last`` for decoders, ``mean`` for encoders).
    adapter : with a ``peft`` backbone holding several adapters (a LoRA ensemble on one base), the adapter this
        model activates before each forward; None uses the backbone as it is.
    entity_ids : relation classification: the token ids of ``<e1>`` and ``<e2>``; the head then reads the
        concatenated hidden states at these two markers (``features`` (B, 2D); ``pooling`` is not used).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        *,
        task: Task,
        pooling: str = "mean",
        head_dropout: float = 0.1,
        adapter: str | None = None,
        entity_ids: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.task = Task(task)
        if (self.task is Task.RELATION_CLASSIFICATION) != (entity_ids is not None):
            raise ValueError(
                f"entity_ids (the ids of <e1> and <e2>) are for relation-classification models, and they need them. "
                f"Got task={self.task.value!r}, entity_ids={entity_ids!r}."
            )
        self.entity_ids = entity_ids
        if pooling == "auto":
            pooling = "last" if is_decoder(encoder.config) else "mean"
        if pooling not in ("mean", "cls", "last"):
            raise ValueError(f"pooling must be auto, mean, cls or last. Got {pooling!r}.")
        self.pooling = pooling
        self.adapter = adapter
        self.dropout = nn.Dropout(head_dropout)
        width = encoder.config.hidden_size * (2 if entity_ids is not None else 1)  # relations: [h_e1; h_e2]
        self.head = nn.Linear(width, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def pool_and_head(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (B, T, D) -> (features, logits): pooled (B, D) / (B, C) for sequences,
        per token (B, T, D) / (B, T, C) for tokens, the two entity markers' states (B, 2D) / (B, C) for relations
        (which need ``input_ids`` to find them). Head dropout applies in training mode."""
        if self.entity_ids is not None:
            if input_ids is None:
                raise ValueError("a relation-classification model needs input_ids to find the entity markers")
            features = entity_features(hidden, input_ids, self.entity_ids)  # (B, 2D)
        elif self.task is Task.TOKEN_CLASSIFICATION:
            features = hidden
        elif self.pooling == "cls":
            features = hidden[:, 0]  # (B, D)
        elif self.pooling == "last":
            last = last_token_index(attention_mask)  # (B,) the last real token, left or right padding
            features = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            features = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        return features, self.head(self.dropout(features))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        delta: torch.Tensor | None = None,
        keep_embeddings: bool = False,
        mixup: tuple[torch.Tensor, float] | None = None,
        **_: torch.Tensor,
    ) -> ModelOutput:
        """Run the model.

        Parameters
        ----------
        input_ids, attention_mask : (B, T).
        delta : (B, T, D) perturbation added to the word embeddings (adversarial training).
        keep_embeddings : keep the (B, T, D) word embeddings with ``retain_grad`` so that their
            gradient is available after ``backward`` (FGM/PGD reuse the clean pass's gradient).
        mixup : ``(perm, lam)``: also return logits of ``lam * f + (1 - lam) * f[perm]`` over the
            pooled features ``f`` (sequence tasks).
        """
        if self.adapter is not None and self.encoder.active_adapter != self.adapter:
            self.encoder.set_adapter(self.adapter)
        embeds = embed(self.encoder, input_ids, keep_embeddings)  # (B, T, D)
        inputs = embeds if delta is None else embeds + delta
        hidden = self.encoder(inputs_embeds=inputs, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        features, logits = self.pool_and_head(hidden, attention_mask, input_ids)
        mixed = None
        if mixup is not None:
            perm, lam = mixup
            mixed = self.head(self.dropout(lam * features + (1.0 - lam) * features[perm]))
        return ModelOutput(
            logits=logits, features=features, embeddings=embeds if keep_embeddings else None, mixed_logits=mixed
        )
