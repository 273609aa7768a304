"""Prometheus metrics per service, summed across gunicorn workers (prometheus_client multiprocess mode).

gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at var/metrics/<service> before any worker starts;
without it (tests in-process, the CLI) the process-local registry is used.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Iterable

from flask import Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from common.http import METHODS
from common.web.db import db

REQUESTS = Counter(
    "toko_http_requests_total", "HTTP requests answered.", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "toko_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_CHECKED_OUT = Gauge(
    "toko_db_pool_checked_out", "Database connections in use.", ["service"], multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "toko_db_pool_size", "Database connections the pools may hold.", ["service"], multiprocess_mode="livesum"
)


def observe(service: str, method: str, route: str | None, status: int, seconds: float, engine=None) -> None:
    # Labels come from fixed sets, so whatever clients send cannot blow up the series count: unmatched
    # paths share one route label, and made-up methods one method label.
    route = route or "<unmatched>"
    if method not in METHODS:
        method = "other"
    _child(REQUESTS, service, method, route, str(status)).inc()
    _child(LATENCY, service, method, route).observe(seconds)
    if engine is not None:
        pool = engine.pool
        state = (pool.checkedout(), pool.size())
        # Each set writes the worker's metrics file: write only what changed (in order, under the lock).
        if _pool_state.get(service) != state:
            with _pool_lock:
                state = (pool.checkedout(), pool.size())
                if _pool_state.get(service) != state:
                    _pool_state[service] = state
                    _child(POOL_CHECKED_OUT, service).set(state[0])
                    _child(POOL_SIZE, service).set(state[1])


_children: dict = {}
_pool_state: dict = {}
_pool_lock = threading.Lock()


def _child(metric, *labels):
    """metric.labels(*labels), remembered: the label lookup costs more than the update itself."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def register_metrics(app: Flask) -> None:
    @app.route("/metrics", methods=["GET"])
    def metrics():
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        return Response(generate_latest(registry) + _queue_lines(), mimetype=CONTENT_TYPE_LATEST)


# A service's queues, read from the database at scrape time: (queue, state, count, age of the oldest in
# seconds) rows, from one cheap query of the service's own, run under its own role in the scrape's session.
QueueRead = Callable[[Session], Iterable[tuple[str, str, int, float]]]
log = logging.getLogger("toko.metrics")


def register_queue_metrics(app: Flask, read: QueueRead) -> None:
    """Publish what `read` finds on this service's /metrics, read afresh at every scrape."""
    app.extensions["toko"]["queue_read"] = read


class _QueueCollector(Collector):
    """toko_queue_depth and toko_queue_oldest_age_seconds, by service, queue and state."""

    def __init__(self, service: str, rows: Iterable[tuple[str, str, int, float]]):
        self.service, self.rows = service, rows

    def collect(self):
        depth = GaugeMetricFamily(
            "toko_queue_depth", "Units of work waiting in a queue.", labels=["service", "queue", "state"]
        )
        age = GaugeMetricFamily(
            "toko_queue_oldest_age_seconds",
            "Age of the oldest unit of work in a queue (0 when it is empty).",
            labels=["service", "queue", "state"],
        )
        for queue, state, count, oldest in self.rows:
            depth.add_metric([self.service, queue, state], count)
            age.add_metric([self.service, queue, state], oldest)
        yield depth
        yield age


def _queue_lines() -> bytes:
    # Read in the scrape itself, not by the workers' gauges: every worker would write the same numbers,
    # and multiprocess mode keeps a gauge only as fresh as the worker that last set it.
    ext = current_app.extensions["toko"]
    read = ext.get("queue_read")
    if read is None:
        return b""
    try:
        rows = list(read(db()))
    except SQLAlchemyError as exc:  # the process's own metrics still answer while the database does not
        log.warning("queue metrics unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueCollector(ext["service"], rows))
    return generate_latest(registry)
