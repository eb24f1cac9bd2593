"""Uncertainty: scores as pure functions on arrays (``scores``) and fitted methods (``methods``).

One sign everywhere: a score of shape ``(N,)`` is higher when the prediction is less trustworthy.
"""

from caveat.uncertainty.errors import ArrayError, NotFittedError
from caveat.uncertainty.scores import SCORES, Score, resolve_score_name

__all__ = ["SCORES", "ArrayError", "NotFittedError", "Score", "resolve_score_name"]
