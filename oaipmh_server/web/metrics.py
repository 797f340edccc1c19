"""The counts /metrics shows (Prometheus, by prometheus_client).

Under gunicorn the CLI sets PROMETHEUS_MULTIPROC_DIR before anything is imported, so every
worker's counts add up in /metrics, whichever worker answers it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


def keep_shared_folder() -> None:
    """The workers' folder of counts made again if it is gone (a clean-up of old temporary
    files under a long-running server): a worker's first count, and a scrape, would
    otherwise fail, and with them every request it answers. Counts begin again, as after
    a restart."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)


def exposition(store: FigureSource | None = None) -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type: the counts of
    every worker, then the store's gauges, read at this scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        keep_shared_folder()
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counts = generate_latest(registry)
    else:
        counts = generate_latest(REGISTRY)
    if store is None:
        return counts, CONTENT_TYPE_LATEST
    gauges = CollectorRegistry()
    gauges.register(StoreCollector(store))
    return counts + generate_latest(gauges), CONTENT_TYPE_LATEST


class FigureSource(Protocol):
    def figures(self, now: datetime) -> Any: ...


class StoreCollector(Collector):
    """Gauges of the store's state, computed when scraped (not kept per worker: every
    worker would report the same database). The store answers from a few rows
    (SqlStore.figures): a scrape costs the same at a million records as at ten."""

    def __init__(self, store: FigureSource) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        figures = self.store.figures(now)
        yield GaugeMetricFamily(
            "oaipmh_store_records", "Records held, deleted ones included", figures.records
        )
        yield GaugeMetricFamily(
            "oaipmh_store_deleted_records", "Deleted records (tombstones) held", figures.deleted
        )
        if figures.last_write is not None:
            yield GaugeMetricFamily(
                "oaipmh_last_load_timestamp_seconds",
                "When the last load (or delete, refresh-sets) committed, in Unix seconds",
                figures.last_write.timestamp(),
            )
        info = GaugeMetricFamily(
            "oaipmh_schema_info", "The store's schema revision (Alembic)", labels=["revision"]
        )
        info.add_metric([figures.revision or ""], 1)
        yield info
        yield GaugeMetricFamily(
            "oaipmh_cutoff_lag_seconds",
            "How far the cut-off of a list started now lies behind the clock: 1 s, more "
            "while a load runs (lists stop before it) or after the clock was set back",
            (now - figures.cutoff).total_seconds(),
        )
