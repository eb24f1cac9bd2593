"""Prometheus metrics of one app (its own ``CollectorRegistry``) and the uncertainty-drift alarm.

Several workers (``caveat serve --workers N``): each worker process counts into its own files under
``PROMETHEUS_MULTIPROC_DIR`` (set by the parent before it starts them), and /metrics, whichever worker answers
it, shows the counters and histograms summed over all workers. The drift test sees only the inputs the answering
worker served; its gauges carry that worker's ``pid``.

Drift: the uncertainty score the run abstains on (``Caveats.score``) of the last ``window`` served
inputs (for a NER run: ``1 - confidence`` of the last ``window`` served spans) is compared with its
distribution on the calibration split by a two-sample Kolmogorov-Smirnov test; the alarm is up when
``p < alpha`` and the window holds at least ``min_inputs`` scores. The test runs when /metrics is scraped,
not on every request.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class DriftResult:
    n: int
    statistic: float  # NaN until the window holds min_inputs scores
    pvalue: float
    alarm: bool


class DriftMonitor:
    """Rolling window of served scores against a fixed reference sample (the calibration split).

    Parameters
    ----------
    reference : (R,) scores on the calibration split; None disables the test (uncalibrated run, or
        one calibrated before the scores were stored).
    window : most recent scores kept.
    min_inputs : scores needed before a test result (and an alarm) is reported.
    alpha : alarm when the p-value is below it.
    """

    def __init__(self, reference: np.ndarray | None, *, window: int, min_inputs: int, alpha: float):
        self.reference = _finite_scores(reference)
        self.window, self.min_inputs, self.alpha = window, min_inputs, alpha
        self._scores: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()  # updated from the model thread, read by the scrape

    def reset(self, reference: np.ndarray | None) -> None:
        """Compare with ``reference`` (R,) from now on (a reloaded calibration's scores; None disables the
        test), and empty the window: scores served under the old calibration are not comparable with it."""
        ref = _finite_scores(reference)
        with self._lock:
            self.reference = ref
            self._scores.clear()

    @property
    def enabled(self) -> bool:
        return self.reference is not None and len(self.reference) > 0

    def update(self, scores: Iterable[float]) -> None:
        """Add served scores (N,); non-finite ones are skipped."""
        values = [float(s) for s in scores if math.isfinite(s)]
        with self._lock:
            self._scores.extend(values)

    def test(self) -> DriftResult:
        """KS test of the window against the reference (NaN and no alarm while too few scores)."""
        from scipy.stats import ks_2samp

        with self._lock:
            recent = np.fromiter(self._scores, dtype=np.float64, count=len(self._scores))
            reference = self.reference  # the window and its reference from one calibration
        if reference is None or len(reference) == 0 or len(recent) < self.min_inputs:
            return DriftResult(len(recent), math.nan, math.nan, False)
        result = ks_2samp(recent, reference)
        return DriftResult(len(recent), float(result.statistic), float(result.pvalue), bool(result.pvalue < self.alpha))


def _finite_scores(reference: np.ndarray | None) -> np.ndarray | None:
    """(R,) the finite scores of ``reference``, or None."""
    if reference is None:
        return None
    ref = np.asarray(reference, dtype=np.float64).ravel()
    return ref[np.isfinite(ref)]


class DriftCollector:
    """Exposes a ``DriftMonitor`` as gauges, computed at scrape time."""

    def __init__(self, monitor: DriftMonitor, score: str):
        self.monitor, self.score = monitor, score

    def describe(self):
        return []  # computed at collect time; nothing to check at registration

    def collect(self):
        r = self.monitor.test()
        labels = ["score"]
        gauges = (
            (
                "caveat_drift_enabled",
                "1 when there are calibration-split scores to compare with",
                float(self.monitor.enabled),
            ),
            ("caveat_drift_window_inputs", "Scores in the rolling window", float(r.n)),
            (
                "caveat_drift_ks_statistic",
                "Two-sample KS statistic, window vs calibration split (NaN: too few inputs)",
                r.statistic,
            ),
            (
                "caveat_drift_ks_pvalue",
                "Two-sample KS p-value, window vs calibration split (NaN: too few inputs)",
                r.pvalue,
            ),
            (
                "caveat_drift_alarm",
                f"1 when the KS p-value < alpha={self.monitor.alpha} with >= "
                f"{self.monitor.min_inputs} inputs in the window",
                float(r.alarm),
            ),
        )
        for name, doc, value in gauges:
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([self.score], value)
            yield family


def shared_dir() -> str | None:
    """The folder the workers of ``caveat serve --workers N`` count into, or None for one process. Only when
    prometheus_client was imported with ``PROMETHEUS_MULTIPROC_DIR`` set: it picks where values live then."""
    folder = os.environ.get(MULTIPROC_DIR)
    return folder if folder and values.ValueClass is not values.MutexValue else None


class ThisProcess:
    """Another collector's samples with a ``pid`` label: a worker's own figures among several workers."""

    def __init__(self, collector):
        self.collector = collector

    def describe(self):
        return []

    def collect(self):
        pid = str(os.getpid())
        for family in self.collector.collect():
            family.samples = [s._replace(labels={**s.labels, "pid": pid}) for s in family.samples]
            yield family


class Metrics:
    """All metrics of one app, on a registry of its own (two apps in one process never clash). ``registry``
    is what /metrics shows: with several workers (``shared_dir()``) the sum over all of them."""

    def __init__(self, drift: DriftMonitor, score: str):
        shared = shared_dir()
        self.registry = CollectorRegistry(auto_describe=shared is None)
        # with several workers the metrics count into files; /metrics reads them all, not this registry
        own = self.registry if shared is None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "caveat_http_requests", "HTTP requests by route and status", ["route", "status"], registry=own
        )
        self.latency = Histogram(
            "caveat_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.decisions = Counter(
            "caveat_decisions",
            "Served inputs by decision (NER: spans, keep / flag)",
            ["action"],
            registry=own,
        )
        self.batches = Counter("caveat_batches", "Forward batches run by the model worker", ["kind"], registry=own)
        self.batch_inputs = Histogram(
            "caveat_batch_inputs",
            "Inputs per forward batch (micro-batching)",
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self.batch_failures = Counter(
            "caveat_batch_failures", "Requests failed by an error inside inference", registry=own
        )
        self.calibration_reloads = Counter(
            "caveat_calibration_reloads",
            "Calibration reloads (SIGHUP or POST /v1/admin/reload) by outcome: ok, or failed (the old one stays)",
            ["outcome"],
            registry=own,
        )
        self.input_log_failures = Counter(
            "caveat_input_log_failures", "Lines the input log (--log-inputs) could not write", registry=own
        )
        self.shed = Counter(
            "caveat_requests_shed",
            "Requests refused or dropped under load, by reason: queue_full or queue_wait (503) or deadline (504)",
            ["reason"],
            registry=own,
        )
        self.worker_up = Gauge(
            "caveat_worker_up",
            "1 per live worker process (with several workers, one sample per pid)",
            registry=own,
            multiprocess_mode="liveall",  # a dead worker's sample goes with mark_process_dead
        )
        self.worker_up.set(1)
        self.drift = drift
        self._drift_gauges = DriftCollector(drift, score)
        if shared is None:
            self.registry.register(self._drift_gauges)
        else:
            multiprocess.MultiProcessCollector(self.registry, path=shared)
            self.registry.register(ThisProcess(self._drift_gauges))

    def watch(self, reference: np.ndarray | None, score: str) -> None:
        """Test drift against a new calibration: its reference scores (R,), reported under its ``score``."""
        self.drift.reset(reference)
        self._drift_gauges.score = score
