"""Errors that users see. Each message names the offending value and the fix."""


class CaveatError(Exception):
    """Base class of every error caveat raises on purpose."""


class ConfigError(CaveatError, ValueError):
    """A configuration key or value is invalid."""


class DataError(CaveatError, ValueError):
    """A data file cannot be read as asked (names file, line and fix)."""


class RunDirError(CaveatError, FileNotFoundError):
    """A run directory is missing, incomplete or from an incompatible version."""


class NotCalibratedError(CaveatError, RuntimeError):
    """A decider was used before ``calibrate`` (the message says what to call first)."""
