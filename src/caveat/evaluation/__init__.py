"""Metrics (pure functions on arrays) and evaluation of a run on a split or file."""
