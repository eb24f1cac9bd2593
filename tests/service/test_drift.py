"""DriftMonitor: the KS test of recent scores against the calibration split, on planted distributions."""

from __future__ import annotations

import math

import numpy as np

from caveat.service.metrics import DriftMonitor

REFERENCE = np.random.default_rng(0).beta(1, 8, size=400)  # like least_confidence scores: mostly small


def test_no_result_and_no_alarm_before_the_window_holds_enough_inputs():
    monitor = DriftMonitor(REFERENCE, window=100, min_inputs=50, alpha=0.01)
    monitor.update(np.full(49, 0.9))
    r = monitor.test()
    assert r.n == 49 and math.isnan(r.pvalue) and math.isnan(r.statistic) and not r.alarm


def test_same_distribution_stays_quiet_and_a_shift_raises_the_alarm():
    rng = np.random.default_rng(1)
    quiet = [DriftMonitor(REFERENCE, window=200, min_inputs=100, alpha=0.01) for _ in range(20)]
    for m in quiet:
        m.update(rng.beta(1, 8, size=200))
    false_alarms = sum(m.test().alarm for m in quiet)
    assert false_alarms <= 2  # alpha = 1%: 0.2 expected in 20 tries; <= 2 with probability > 99.9%

    shifted = DriftMonitor(REFERENCE, window=200, min_inputs=100, alpha=0.01)
    shifted.update(rng.beta(3, 4, size=200))  # much more uncertain traffic
    r = shifted.test()
    assert r.alarm and r.pvalue < 1e-6 and r.statistic > 0.4


def test_the_window_rolls_back_to_quiet():
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(REFERENCE, window=150, min_inputs=100, alpha=0.01)
    monitor.update(rng.beta(3, 4, size=150))
    assert monitor.test().alarm
    monitor.update(rng.beta(1, 8, size=150))  # the shifted scores have left the window
    assert not monitor.test().alarm and monitor.test().n == 150


def test_without_reference_scores_the_test_is_disabled():
    monitor = DriftMonitor(None, window=20, min_inputs=5, alpha=0.05)
    monitor.update([0.5] * 20 + [math.nan])
    r = monitor.test()
    assert not monitor.enabled and not r.alarm and math.isnan(r.pvalue) and r.n == 20
