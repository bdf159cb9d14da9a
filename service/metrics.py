"""Prometheus metrics of the detector, shared by the HTTP process and the inference worker processes.

    use_multiprocess(dir)        # before any metric is made: the server's processes write to dir
    m = metrics(); m.verdicts.labels("real").inc()
    body, ctype = render(extra_collector)   # what GET /metrics answers

LitServe answers HTTP in one process and runs the model in spawned workers, so counters live in
prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR) and /metrics merges them.
Gauges that describe shared state (review queue, drift, outbox) are read at scrape time instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from functools import cache
from pathlib import Path
from types import SimpleNamespace

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)


def use_multiprocess(directory: Path) -> None:
    """Start a fresh multiprocess directory and make every later metric write there (this process and children)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # it was chosen when prometheus_client was first imported


@cache
def metrics() -> SimpleNamespace:
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        requests=Counter("aidetect_requests", "HTTP requests by endpoint and status", ["endpoint", "status"]),
        latency=Histogram(
            "aidetect_request_latency_seconds", "request latency, seconds", ["endpoint"], buckets=LATENCY_BUCKETS
        ),
        verdicts=Counter("aidetect_verdicts", "verdicts given", ["verdict"]),
        score=Histogram("aidetect_score", "calibrated AI score of answered images", buckets=SCORE_BUCKETS),
        batch=Histogram("aidetect_batch_size", "images per forward pass", buckets=BATCH_BUCKETS),
        keep_retries=Counter("aidetect_review_keep_retries", "object store puts of a kept image tried again"),
        keep_failures=Counter(
            "aidetect_review_keep_failures", "kept images the object store did not take: answered, not kept"
        ),
        outbox_adopted=Counter(
            "aidetect_outbox_adopted_records",
            "detection records this server adopted from servers that stopped with the database down",
        ),
        model_info=Gauge(
            "aidetect_model_info", "the model version a worker serves (1)", ["name", "version"], multiprocess_mode="max"
        ),
    )


# Parked objects are listed at most this often: a listing is an object-store request, and one to a store that
# is away costs the scrape up to the review store's timeouts (service/review_store.py: 0.5 s connect, 2 s read).
PARKED_CACHE_S = 60.0


class StateCollector:
    """Gauges read at scrape time: review queue size (cached a few seconds), drift PSI, outbox backlog, and
    the outbox objects stopped servers parked in the object store (`parked`: a callable counting them)."""

    def __init__(
        self,
        queue_size=None,
        drift_file: Path | None = None,
        outbox_size=None,
        cache_s: float = 5.0,
        drift_stored=None,
        parked=None,
    ):
        self.queue_size, self.drift_file, self.outbox_size, self.cache_s = queue_size, drift_file, outbox_size, cache_s
        # The newest report in the records database (`aidetect monitor drift` stores it there, wherever it ran:
        # in the cluster a CronJob); the local file is the fallback of a store-less run.
        self.drift_stored = drift_stored
        self.parked = parked
        self._queue: tuple[float, float | None] = (0.0, None)
        self._parked: tuple[float, float | None] = (-1e9, None)
        self._drift: tuple[float, dict | None] = (-1e9, None)

    def _drift_report(self) -> dict | None:
        at, report = self._drift
        if self.drift_stored and time.monotonic() - at > max(self.cache_s, 30.0):
            try:
                report = self.drift_stored()
            except Exception:  # database down: fall back to the file, as without a database
                report = None
            self._drift = (time.monotonic(), report)
        return report or (read_drift(self.drift_file) if self.drift_file else None)

    def _queue_value(self) -> float | None:
        self._queue = _cached(self._queue, self.queue_size, self.cache_s)  # database down: no gauge, not a lie
        return self._queue[1]

    def _parked_value(self) -> float | None:
        # While the database is down nothing adopts parked records, so this is read whatever the database does.
        self._parked = _cached(self._parked, self.parked, max(self.cache_s, PARKED_CACHE_S))
        return self._parked[1]

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        q = self._queue_value()
        if q is not None:
            g = GaugeMetricFamily("aidetect_review_queue_size", "uncertain detections waiting for a moderator")
            g.add_metric([], q)
            yield g
        if self.outbox_size:
            g = GaugeMetricFamily("aidetect_outbox_pending", "detection records waiting for the database")
            g.add_metric([], float(self.outbox_size()))
            yield g
        parked = self._parked_value()
        if parked is not None:
            g = GaugeMetricFamily(
                "aidetect_outbox_parked_objects",
                "outboxes that stopped servers parked in the object store, waiting for a running server to adopt",
            )
            g.add_metric([], parked)
            yield g
        drift = self._drift_report()
        if drift:
            g = GaugeMetricFamily(
                "aidetect_drift_psi", "PSI of recent traffic vs the training snapshot", labels=["feature"]
            )
            for feature, row in drift.get("features", {}).items():
                if row.get("psi") is not None:
                    g.add_metric([feature], float(row["psi"]))
            yield g


def _cached(entry: tuple[float, float | None], read, ttl: float) -> tuple[float, float | None]:
    """(read at, value): `read()` again once `ttl` has passed; None when there is no reader or it fails."""
    at, value = entry
    if time.monotonic() - at > ttl:
        try:
            value = float(read()) if read else None
        except Exception:
            value = None
        at = time.monotonic()
    return at, value


def read_drift(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def render(extra=None) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    metrics()  # every family shows up, even before its first sample
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra is not None:
        reg = CollectorRegistry()
        reg.register(extra)
        body += generate_latest(reg)
    return body, CONTENT_TYPE_LATEST
