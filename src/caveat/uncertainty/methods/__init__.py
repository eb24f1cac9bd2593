"""Uncertainty methods fitted on the calibration split: each is a staged object (``fit`` returns
``self``; using it before ``fit`` raises ``NotFittedError``) that works on arrays, not models."""

from caveat.uncertainty.methods.knn import NearestNeighbours
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.temperature import TemperatureScaling

__all__ = ["Mahalanobis", "NearestNeighbours", "TemperatureScaling"]
