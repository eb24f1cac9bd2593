"""Backbones, heads and the run directory (safetensors + JSON only)."""

from caveat.models.backbone import load_backbone, resolve_model_path
from caveat.models.classifier import CaveatModel, ModelOutput

__all__ = ["CaveatModel", "ModelOutput", "load_backbone", "resolve_model_path"]
