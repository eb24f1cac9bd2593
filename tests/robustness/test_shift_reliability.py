"""Shift reliability: the saved bins are ece's bins (planted arrays give known bins), and on a real shifted
set they add up to the set's size, accuracy and ECE, raw and after the run's temperature."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caveat.evaluation import calibration as cm
from caveat.evaluation.run import evaluate_run
from caveat.robustness.shift import N_BINS, reliability

approx = pytest.approx


def test_planted_confidences_land_in_known_bins():
    # two inputs at confidence 0.55 (one right), four at 0.95 (three right); 1/15 = 0.0667-wide bins
    probs = np.array([[0.45, 0.55], [0.45, 0.55], [0.95, 0.05], [0.95, 0.05], [0.95, 0.05], [0.05, 0.95]])
    y = np.array([1, 0, 0, 0, 0, 0])
    bins = reliability(probs, y)
    assert bins["count"] == [2, 4]
    assert bins["accuracy"] == approx([0.5, 0.75]) and bins["confidence"] == approx([0.55, 0.95])
    n = sum(bins["count"])
    gaps = sum(c * abs(a - f) for c, a, f in zip(bins["count"], bins["accuracy"], bins["confidence"])) / n
    assert gaps == approx(cm.ece(probs, y)) == approx(0.15)


@pytest.mark.parametrize("which", [0, 1], ids=["raw", "calibrated"])
def test_saved_bins_add_up_to_the_shifted_set(trained_runs, mixed_file, which):
    result = evaluate_run(trained_runs[which], "test", shift={"mixed": str(mixed_file)}, write=False)
    mixed = result["shift"]["mixed"]
    rel = mixed["reliability"]
    assert rel["n_bins"] == N_BINS == 15
    assert set(rel) == {"n_bins", "raw", *(["calibrated"] if which else [])}
    assert mixed["accuracy"] <= 0.8  # the conflicting keyword makes errors: the accuracy check is not 1 == 1
    for key, ece in (("raw", mixed["ece"]), ("calibrated", mixed.get("calibrated", {}).get("ece"))):
        if key not in rel:
            continue
        count, acc, conf = (np.array(rel[key][k], dtype=float) for k in ("count", "accuracy", "confidence"))
        n = mixed["n"]
        assert count.sum() == n == 60 and (count > 0).all(), key  # empty bins left out
        assert (count * acc).sum() / n == approx(mixed["accuracy"]), key  # temperature keeps the argmax
        assert (count * np.abs(acc - conf)).sum() / n == approx(ece), key  # the very bins the saved ECE sums
        which_bin = np.ceil(conf * N_BINS) - 1  # right-closed equal-width bins
        assert (np.diff(which_bin) > 0).all(), key  # one entry per bin, lowest confidence first
    assert len(json.dumps(rel)) < 2500  # JSON-small: at most 15 bins x 3 numbers per curve
