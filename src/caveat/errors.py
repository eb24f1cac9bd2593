"""Errors that users see. Each message names the offending value and the fix.

Messages speak the library's language: an argument or field is written ``{name}`` in the message and
listed in ``fields``; ``str(err)`` shows the library's name, and each face renders its own spelling
with ``err.render(names)`` (the CLI its ``--flags``, the service its JSON fields), so no face rewrites
messages with a regex.

>>> err = ConfigError("{data}='dev' is not a split; use one of train, test", fields=("data",))
>>> str(err)
"data='dev' is not a split; use one of train, test"
>>> err.render({"data": "--data"})
"--data='dev' is not a split; use one of train, test"
"""

from __future__ import annotations

from collections.abc import Mapping


class CaveatError(Exception):
    """Base class of every error caveat raises on purpose.

    Parameters
    ----------
    message : the text; ``{name}`` marks each argument named in ``fields``.
    fields : the arguments or config fields the message is about, in library terms.
    """

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()):
        self.template, self.fields = message, tuple(fields)
        super().__init__(self.render())

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each field spelled as ``names`` says (default: the library's own name)."""
        text = self.template
        for field in self.fields:
            text = text.replace("{" + field + "}", (names or {}).get(field, field))
        return text


class ConfigError(CaveatError, ValueError):
    """A configuration key or value is invalid."""


class DataError(CaveatError, ValueError):
    """A data file cannot be read as asked (names file, line and fix)."""


class RunDirError(CaveatError, FileNotFoundError):
    """A run directory is missing, incomplete or from an incompatible version."""


class NotCalibratedError(CaveatError, RuntimeError):
    """A decider was used before ``calibrate`` (the message says what to call first)."""


class RenamedWarning(DeprecationWarning):
    """An old name (of a score, ...) was used: it still works until the next release (``Registry.alias``).
    The CLI says these on stderr; Python hides a library's ``DeprecationWarning`` from scripts by default."""
