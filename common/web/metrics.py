"""Prometheus metrics per service, summed across gunicorn workers (prometheus_client multiprocess mode).

gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at var/metrics/<service> before any worker starts;
without it (tests in-process, the CLI) the process-local registry is used.
"""

from __future__ import annotations

import os
import threading

from flask import Flask, Response
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

from common.http import METHODS

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
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
