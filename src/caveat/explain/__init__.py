"""Explanations of single predictions: which words moved the model, and by how much."""

from caveat.explain.integrated_gradients import Attribution, integrated_gradients

__all__ = ["Attribution", "integrated_gradients"]
