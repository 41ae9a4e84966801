"""Prometheus metrics of a replica (``GET /metrics``), named by Prometheus' conventions.

Low-cardinality labels only: deployment, model version, route and status class (never a
request id, a user or a feature value). With several worker processes the
``prometheus_client`` multiprocess mode aggregates them: ``tidal serve --workers N``
points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: request latency buckets in seconds; the latency objective is added to them
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass
class ServerMetrics:
    """The metrics one replica exports, on their own registry (tests run several)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    model_loads: Counter
    log_lag: Gauge
    log_pending: Gauge

    @classmethod
    def create(cls, latency_objective_s: float) -> ServerMetrics:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = CollectorRegistry()
        buckets = sorted({*LATENCY_BUCKETS, latency_objective_s})
        gauge_mode = {"multiprocess_mode": "livesum"} if multiprocess else {}
        return cls(
            registry=registry,
            requests=Counter("tidal_requests", "Inference requests answered.",
                             ["deployment", "version", "route", "status"],
                             registry=registry),
            latency=Histogram("tidal_request_duration_seconds",
                              "Time from receiving a request to its response.",
                              ["deployment"], buckets=buckets, registry=registry),
            batch_size=Histogram("tidal_batch_rows", "Rows per model call (adaptive "
                                 "batching).", ["deployment", "version"],
                                 buckets=BATCH_BUCKETS, registry=registry),
            queue_depth=Gauge("tidal_batch_queue_requests", "Requests waiting for a model.",
                              ["deployment"], registry=registry, **gauge_mode),
            model_loads=Counter("tidal_model_loads", "Model version loads.",
                                ["deployment", "version", "outcome"], registry=registry),
            log_lag=Gauge("tidal_prediction_log_lag_seconds", "Age of the oldest prediction "
                          "record not yet on disk.", registry=registry,
                          **({"multiprocess_mode": "max"} if multiprocess else {})),
            log_pending=Gauge("tidal_prediction_log_pending_records", "Prediction records "
                              "not yet on disk.", registry=registry, **gauge_mode),
        )

    def __post_init__(self) -> None:
        self._children: dict[tuple[str, ...], Any] = {}

    def count(self, deployment: str, version: str, route: str, status: str,
              seconds: float | None = None) -> None:
        """Count one answered request (and its latency): the labelled children are cached,
        as ``labels()`` costs several microseconds on the hot path."""
        key = (deployment, version, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (
                self.requests.labels(deployment, version, route, status),
                self.latency.labels(deployment))
        child[0].inc()
        if seconds is not None:
            child[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' when multiprocess)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx``: the status label (never the exact code: cardinality)."""
    return f"{status // 100}xx"
