"""The package version, on the lowest floor so that every module may record it."""

__version__ = "0.1.0"
