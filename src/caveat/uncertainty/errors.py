"""Errors of the uncertainty stage. Each message names the offending value and the fix."""

from caveat.errors import CaveatError


class NotFittedError(CaveatError, RuntimeError):
    """A method was used before ``fit`` (e.g. ``transform`` or ``score`` on a fresh object)."""


class ArrayError(CaveatError, ValueError):
    """An array has the wrong shape, dtype or values (e.g. probabilities that do not sum to 1)."""
