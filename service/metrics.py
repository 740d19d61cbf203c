"""Prometheus metrics: the whole service's, whichever worker is scraped.

One process alone keeps its metrics in memory. With ``--workers N`` each
scrape lands on whichever worker the kernel picks, so a worker's own counts
would jump between workers' totals and ``rate()`` would read resets. There
the supervisor gives its workers one directory (``METRICS_DIR_ENV``,
new for each start of the service) and prometheus-client's multiprocess mode
keeps every value in a file of it: a scrape of any worker sums the counters
and merges the histograms of all workers, the dead ones included (their
files stay, so no counter ever goes down), and shows each live worker's
gauges with its ``pid`` label (the supervisor removes a dead worker's).

The cache gauges are read from the cache index at scrape time, so they
describe the whole cache whichever worker answers.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .cache import CacheStats
from .process.supervisor import METRICS_DIR_ENV

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# A worker's value file starts with the 4 bytes of its used length; one
# shorter is being created now (or its worker died creating it).
_SHORTEST_VALUE_FILE = 8
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _CacheCollector(Collector):
    """Reads the whole cache's totals when scraped."""

    def __init__(self, read_stats: Callable[[], CacheStats | None]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._read_stats()
        if stats is None:  # cache unavailable: report nothing rather than zeros
            return
        yield GaugeMetricFamily(
            "image_factory_cache_bytes", "Bytes of cached renders.", value=stats.bytes
        )
        yield GaugeMetricFamily(
            "image_factory_cache_entries", "Number of cached renders.", value=stats.entries
        )


class _WorkersCollector(Collector):
    """prometheus-client's multiprocess collection, minus the value files
    not written yet: its own reads every file in the directory, and a file
    a new worker has created but not yet filled (or a worker killed in
    between left empty) fails the whole scrape with a struct.error."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = [
            path
            for path in glob.glob(os.path.join(self._directory, "*.db"))
            if _size(path) >= _SHORTEST_VALUE_FILE
        ]
        # prometheus-client 0.26 leaves merge unannotated.
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # removed since the listing: a dead worker's gauges


class Metrics:
    """The service's metrics; the owner of its registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        shared = os.environ.get(METRICS_DIR_ENV)
        # What a scrape reads: this process's registry, or every worker's files.
        self._exposed = registry
        if shared:
            self._exposed = CollectorRegistry()
            self._exposed.register(_WorkersCollector(shared))
        self.requests = Counter(
            "image_factory_requests", "HTTP requests answered.", ["status"], registry=registry
        )
        self.request_duration = Histogram(
            "image_factory_request_duration_seconds",
            "Time from request to response headers.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.renders = Counter("image_factory_renders", "Renders completed.", registry=registry)
        self.render_duration = Histogram(
            "image_factory_render_duration_seconds",
            "Time a render spent in a render thread.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache_hits = Counter(
            "image_factory_cache_hits", "Requests served from the disk cache.", registry=registry
        )
        self.cache_misses = Counter(
            "image_factory_cache_misses", "Requests not found in the disk cache.", registry=registry
        )
        self.cache_evictions = Counter(
            "image_factory_cache_evictions",
            "Entries evicted by this process to keep the cache bound.",
            registry=registry,
        )
        self.cache_errors = Counter(
            "image_factory_cache_errors",
            "Times the cache directory could not be used (served uncached instead).",
            registry=registry,
        )
        self.mezzanine_builds = Counter(
            "image_factory_mezzanine_builds",
            "Mezzanines built: an original's second distinct variant (--mezzanine).",
            registry=registry,
        )
        self.mezzanine_hits = Counter(
            "image_factory_mezzanine_hits",
            "Renders that read an original's mezzanine instead of the original.",
            registry=registry,
        )
        # Per worker: each live worker's own value, labelled with its pid.
        self.renders_in_flight = Gauge(
            "image_factory_renders_in_flight",
            "Renders running or waiting for a render thread.",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.decode_budget_reserved = Gauge(
            "image_factory_decode_budget_reserved_bytes",
            "Whole-image decode memory reserved by the renders running (--decode-budget).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.decode_budget_waits = Counter(
            "image_factory_decode_budget_waits",
            "Renders that waited for room in the decode budget.",
            registry=registry,
        )
        self.rejected = Counter(
            "image_factory_rejected",
            "Requests refused to protect the service.",
            ["reason"],
            registry=registry,
        )

        # Remote originals (service/origins/).
        self.origin_requests = Counter(
            "image_factory_origin_requests",
            "Downloads asked of origins, by origin and outcome (fetched, not_modified, "
            "not_found, failed, timeout, unprocessable; refused: stopped by the URL "
            "source rules, before any request or at a redirect).",
            ["origin", "outcome"],
            registry=registry,
        )
        self.origin_bytes = Counter(
            "image_factory_origin_bytes",
            "Body bytes downloaded from origins.",
            ["origin"],
            registry=registry,
        )
        self.origin_waiting = Gauge(
            "image_factory_origin_downloads_waiting",
            "Downloads waiting for a slot of their origin host (--origin-concurrency).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.origin_duration = Histogram(
            "image_factory_origin_duration_seconds",
            "Time an origin request took, body included.",
            ["origin"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.source_cache = Counter(
            "image_factory_source_cache",
            "Originals asked of the source cache: hit (fresh, no origin request) "
            "or miss (the origin was asked).",
            ["result"],
            registry=registry,
        )
        self.revalidations = Counter(
            "image_factory_source_revalidations",
            "Revalidations of a cached original: unchanged, changed or failed.",
            ["outcome"],
            registry=registry,
        )
        self.stale_served = Counter(
            "image_factory_source_stale_served",
            "Requests served from an original that could not be revalidated "
            "(--source-stale-if-error).",
            registry=registry,
        )
        self.ssrf_refusals = Counter(
            "image_factory_ssrf_refusals",
            "URL sources and redirect hops refused by host pattern or address.",
            registry=registry,
        )

    def watch_cache(self, read_stats: Callable[[], CacheStats | None]) -> None:
        self._exposed.register(_CacheCollector(read_stats))

    def exposition(self) -> bytes:
        """The text exposition (reads the cache index, and with several
        workers their files: call off the loop)."""
        return generate_latest(self._exposed)
