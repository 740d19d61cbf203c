"""/metrics describes the whole service under --workers, whichever worker
the kernel hands a scrape to: counters summed over the workers and never
decreasing between scrapes, histograms merged, gauges per worker (issue 22,
part 3)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.process.supervisor import METRICS_DIR_ENV

from .serving import children, running_service
from .waiting import eventually

REQUESTS = 240
SCRAPES = 20
# The families whose samples only ever grow: counters and histograms.
_GROWING = ("counter", "histogram")

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(base: str) -> tuple[dict[Sample, float], list[dict[str, str]]]:
    """The growing samples of one scrape, and the labels of the in-flight gauge."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    growing: dict[Sample, float] = {}
    gauges: list[dict[str, str]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.type in _GROWING and not sample.name.endswith("_created"):
                growing[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            if sample.name == "image_factory_renders_in_flight":
                gauges.append(sample.labels)
    return growing, gauges


def requests_total(samples: dict[Sample, float]) -> float:
    return sum(v for (name, _), v in samples.items() if name == "image_factory_requests_total")


def paths() -> Iterator[str]:
    for number in range(REQUESTS):
        if number % 6 == 5:
            yield "/picture/no-such-image.jpg?w=100"  # a 404, counted like the rest
        else:
            yield f"/picture/retina.jpg?w={40 + number % 12}"  # 12 variants: mostly hits


def test_metrics_under_load_add_up_over_three_workers(tmp_path: Path) -> None:
    with running_service(
        "--workers", "3", "--cache-dir", str(tmp_path / "cache"), "--concurrency", "1"
    ) as service:
        before, _ = scrape(service.base)
        sent = 0
        progress = threading.Condition()

        def get(path: str) -> int:
            nonlocal sent
            try:
                with urllib.request.urlopen(service.base + path, timeout=60) as response:
                    response.read()
                    status: int = response.status
            except urllib.error.HTTPError as error:
                error.read()
                status = error.code
            with progress:
                sent += 1
                progress.notify_all()
            return status

        scrapes = [before]
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(get, path) for path in paths()]
            for number in range(1, SCRAPES - 1):
                wanted = number * REQUESTS // SCRAPES
                with progress:  # spread the scrapes over the load
                    assert progress.wait_for(lambda: sent >= wanted, timeout=120)  # noqa: B023
                scrapes.append(scrape(service.base)[0])
            statuses = sorted({future.result() for future in futures})
        assert statuses == [200, 404]
        last, gauges = scrape(service.base)
        scrapes.append(last)

    assert len(scrapes) == SCRAPES
    for earlier, later in itertools.pairwise(scrapes):
        for sample, value in earlier.items():
            assert later.get(sample, 0.0) >= value, f"{sample} went from {value} down"
    # Every request sent is counted once, whichever worker answered it: the
    # load, and the scrapes before the last (a scrape counts once answered).
    assert requests_total(last) == requests_total(before) + REQUESTS + SCRAPES - 1
    count = last[("image_factory_request_duration_seconds_count", ())]
    assert count == requests_total(last)  # the merged histogram saw them all
    assert len({labels["pid"] for labels in gauges}) == 3  # one gauge per live worker


def test_a_dead_workers_counts_stay_in_the_sums(tmp_path: Path) -> None:
    """Killed, a worker's gauges leave /metrics with it, and its counters
    stay: the total never goes down, and its replacement adds its own."""
    with running_service("--workers", "2", "--cache-dir", str(tmp_path / "cache")) as service:
        for _ in range(30):
            with urllib.request.urlopen(f"{service.base}/healthz", timeout=30) as response:
                response.read()
        before, _ = scrape(service.base)
        workers = children(service.process.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = eventually_replaced(service.process.pid, victim)
        after = eventually_gauged(service.base, replaced)
    assert requests_total(after) >= requests_total(before) + 1


def eventually_replaced(supervisor: int, victim: int) -> set[int]:
    """The supervisor's two workers once the victim has been replaced."""

    def replaced() -> set[int] | None:
        workers = children(supervisor)
        return workers if len(workers) == 2 and victim not in workers else None

    return eventually(replaced, 60, message="the killed worker was not replaced")


def eventually_gauged(base: str, workers: set[int]) -> dict[Sample, float]:
    """A scrape whose per-worker gauges are exactly ``workers``' (the
    replacement's appear once it has started; the dead one's are gone)."""

    def gauged() -> dict[Sample, float] | None:
        samples, gauges = scrape(base)
        return samples if {int(labels["pid"]) for labels in gauges} == workers else None

    # Under --workers each worker binds its own socket: killed while its
    # peer was still starting, none may listen for a moment (refused).
    return eventually(
        gauged,
        60,
        message=f"the gauges never showed exactly the workers {workers}",
        ignoring=(urllib.error.URLError, ConnectionError),
    )


def test_a_value_file_not_yet_written_does_not_fail_a_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's file created but still empty (or left so by a kill) is skipped, not a 500."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv(METRICS_DIR_ENV, str(shared))
    (shared / "counter_4242.db").write_bytes(b"")
    (shared / "gauge_liveall_4242.db").write_bytes(b"\0\0")
    assert Metrics().exposition() == b""  # nothing to sum yet, and no error
