"""Build a task model from a ``ModelConfig``: backbone (full, or frozen with LoRA) plus a fresh head."""

from __future__ import annotations

from caveat.config import ModelConfig
from caveat.models.backbone import load_backbone
from caveat.models.classifier import CaveatModel
from caveat.models.lora import add_lora, base_info
from caveat.models.relations import add_markers
from caveat.types import Task


def build_model(cfg: ModelConfig, task: Task, num_labels: int):
    """``(tokenizer, model, base)``: ``base`` identifies the frozen backbone of a LoRA model (None otherwise).
    Relation classification adds the entity markers to the tokenizer and the embeddings (``models.relations``)."""
    tokenizer, encoder = load_backbone(cfg.name_or_path, dropout=cfg.dropout, truncation_side=cfg.truncation_side)
    entity_ids = add_markers(tokenizer, encoder) if Task(task) is Task.RELATION_CLASSIFICATION else None
    base = None
    if cfg.peft.method == "lora":
        base = base_info(cfg.name_or_path, encoder.config)
        encoder = add_lora(encoder, cfg.peft)
    model = CaveatModel(
        encoder, num_labels, task=task, pooling=cfg.pooling, head_dropout=cfg.head_dropout, entity_ids=entity_ids
    )
    return tokenizer, model, base
