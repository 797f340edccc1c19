"""Prometheus metrics (prometheus_client). Under gunicorn the CLI sets
PROMETHEUS_MULTIPROC_DIR before anything is imported, so every worker's counts add up in
/metrics, whichever worker answers it."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

REQUESTS = Counter("oaipmh_requests", "OAI-PMH requests answered, by verb", ["verb"])
ERRORS = Counter("oaipmh_errors", "OAI-PMH error codes answered", ["code"])
RECORDS = Counter(
    "oaipmh_records_served", "Records and headers served in list and get answers", ["verb"]
)
THROTTLED = Counter(
    "oaipmh_throttled", "Requests turned away with 503 (flow control or database)", ["reason"]
)
LATENCY = Histogram(
    "oaipmh_page_seconds",
    "Time to answer one OAI-PMH request, by verb",
    ["verb"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
