import numpy as np
import pytest
from scipy.special import softmax

from caveat.errors import ConfigError
from caveat.evaluation.calibration import nll
from caveat.uncertainty import ArrayError, NotFittedError
from caveat.uncertainty.methods import TemperatureScaling


def planted(n, c=5, scale=3.0, seed=0):
    """Calibrated logits z, labels drawn from softmax(z), and over-confident logits scale * z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, c))  # (N, C)
    labels = np.argmax(z + rng.gumbel(size=z.shape), axis=1)  # Gumbel-max: y ~ softmax(z)
    return z * scale, labels


def test_recovers_planted_temperature():
    logits, labels = planted(3000)
    ts = TemperatureScaling().fit(logits, labels)
    assert ts.temperature == pytest.approx(3.0, abs=0.3)  # tolerance: ~4 standard errors at N = 3000
    before, after = nll(softmax(logits, axis=1), labels), nll(softmax(ts.transform(logits), axis=1), labels)
    assert after < before - 0.1 and ts.nll(logits, labels) == pytest.approx(after)
    scaled = ts.transform(logits)
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))
    np.testing.assert_allclose(scaled, logits / ts.temperature)


def test_calibrated_logits_keep_temperature_one():
    logits, labels = planted(3000, scale=1.0, seed=1)
    assert TemperatureScaling().fit(logits, labels).temperature == pytest.approx(1.0, abs=0.1)


def test_token_logits_ignore_masked_positions():
    flat_logits, flat_labels = planted(1200, seed=2)  # (K, C) real positions
    n, t, c = 100, 16, 5
    rng = np.random.default_rng(3)
    mask = np.zeros((n, t), bool)
    mask.flat[rng.choice(n * t, size=1200, replace=False)] = True
    logits = rng.normal(scale=50.0, size=(n, t, c))  # padding: wild logits ...
    labels = np.full((n, t), -100)  # ... and the usual ignore label
    logits[mask], labels[mask] = flat_logits, flat_labels
    ts = TemperatureScaling().fit(logits, labels, mask=mask)
    ref = TemperatureScaling().fit(flat_logits, flat_labels)
    assert ts.temperature == pytest.approx(ref.temperature, rel=1e-6)
    assert ts.transform(logits).shape == (n, t, c)


def test_state_round_trip():
    logits, labels = planted(500)
    ts = TemperatureScaling().fit(logits, labels)
    again = TemperatureScaling.from_state(ts.state())
    np.testing.assert_array_equal(again.transform(logits), ts.transform(logits))


def test_errors_name_value_and_fix():
    with pytest.raises(NotFittedError, match=r"call fit\(calibration logits, labels\) first"):
        TemperatureScaling().transform(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match=r"0 < low < high; got \(2, 1\)"):
        TemperatureScaling(bounds=(2, 1))
    with pytest.raises(ArrayError, match=r"labels must be integer class ids in \[0, 3\).*mask="):
        TemperatureScaling().fit(np.zeros((2, 4, 3)), np.full((2, 4), -100))
    with pytest.raises(ArrayError, match=r"labels must have shape \(4,\)"):
        TemperatureScaling().fit(np.zeros((4, 3)), np.zeros(5, int))
    with pytest.raises(ArrayError, match="mask is all False"):
        TemperatureScaling().fit(np.zeros((2, 4, 3)), np.zeros((2, 4), int), mask=np.zeros((2, 4), bool))
    ts = TemperatureScaling().fit(*planted(200))
    with pytest.raises(ArrayError, match="5 classes seen in fit"):
        ts.transform(np.zeros((2, 3)))
    with pytest.warns(UserWarning, match="search bound"):
        TemperatureScaling(bounds=(0.5, 1.0)).fit(*planted(500))  # true T = 3 lies above the bound
