"""Explanations of single predictions: which words moved the model, and by how much.

Every method (``ig``, ``shap``, ``lime``, ``occlusion``, ``random``) explains the same scalar quantity
(``targets.py``: a label's calibrated probability, an uncertainty score, or a span's confidence) and
returns one ``Attribution``; ``faithfulness.py`` measures how much each can be trusted.
"""

from caveat.explain import integrated_gradients as _ig  # noqa: F401  (registers "ig")
from caveat.explain import perturbation as _perturbation  # noqa: F401  (registers the black-box methods)
from caveat.explain.base import EXPLAINERS, Attribution
from caveat.explain.integrated_gradients import integrated_gradients
from caveat.explain.targets import Explained, ExplainModel

METHODS = ("ig", "shap", "lime", "occlusion")


def explain(
    model: ExplainModel,
    text,
    *,
    method: str = "ig",
    target: str = "predicted",
    span: str | None = None,
    label: str | None = None,
    seed: int = 0,
    **options,
) -> Attribution:
    """Explain one input with one method (see ``ExplainModel.explained`` for ``target``/``span``/``label``;
    ``options`` go to the method: ``steps`` for ig, ``max_evals`` for shap, ``samples`` for lime).
    ``target='uncertainty'`` is the score the method declares as its ``uncertainty`` attribute (ig:
    least confidence), else the entropy."""
    fn = EXPLAINERS.get(method)
    uncertainty = getattr(fn, "uncertainty", "entropy")
    return fn(model.explained(text, target, span=span, label=label, uncertainty=uncertainty), seed=seed, **options)


__all__ = ["EXPLAINERS", "METHODS", "Attribution", "ExplainModel", "Explained", "explain", "integrated_gradients"]
