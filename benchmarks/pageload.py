"""Scenario 9, a page load: many browsers asking for the corpus at the widths
they need, with and without the service's width ladder (``--widths``).

A page lists the originals; each browser (a viewport width in CSS px and a
device pixel ratio, drawn from ``DEVICES`` by a seeded RNG, so every run
asks the same) loads it and asks each original once at the width it needs,
``/picture/<original>?w=<CSS px x DPR>&format=webp``. Before them, the
*burst*: each original asked at every ladder width at once (one wave of
concurrent requests per original, the next when all have answered), as a
srcset page's first visitors of different widths do. Without the ladder
each distinct width is a render of its own; with ``--widths`` the service
rounds each up to a ladder step (never beyond the original's width), so
the page costs at most one render per step and original.

A round starts the service afresh, an empty cache directory of its own,
for each variant (``plain``: no ladder; ``ladder``: ``--widths LADDER``),
the variants' order rotated each round, and runs the same requests at the
same concurrency: the burst, then the browsers' page loads at
``PAGE_CONCURRENCY`` connections. After each phase it reads the service's
``/metrics`` (``image_factory_renders_total``, ``image_factory_cache_entries``,
``image_factory_cache_bytes``); at the end ``du`` of the cache directory.
Every request has answered by then, and the service counts a render and
commits its cache entry before it answers, so nothing is waited for.

The ladder variant runs only where the service takes ``--widths`` (its
``--help`` says so, ``ladder_supported``); a service that still exits with
status 2 at start (its one-line usage error) is recorded as skipped.

The load is driven here, by an aiohttp client in this process (wrk cannot
send a fixed list once and stop, nor hold a wave until it has answered);
its latencies are counted as ``image-factory loadtest`` counts them
(``service.loadtest.LoadStats``).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from service.loadtest import LoadStats

from . import competitors, urls

LADDER = (320, 640, 960, 1280, 1920, 2560)
PAGE_CONCURRENCY = 16
FORMAT = "webp"
SEED = 9
# Browsers in the full run: 16 x the 12 originals of the mix, 192 page requests
# (a run of the plain variant took 2.5 minutes on 2 shared cores, 2026-12-02).
BROWSERS = 16
# The service's default --max-output-size: no browser here asks for more.
MAX_OUTPUT = 4096
METRICS = {
    "renders": "image_factory_renders_total",
    "cache_entries": "image_factory_cache_entries",
    "cache_bytes": "image_factory_cache_bytes",
}
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class DeviceClass:
    """A kind of browser: how often it comes, its viewport widths (CSS px)
    and device pixel ratios, each drawn uniformly."""

    name: str
    weight: float
    widths: Sequence[int]
    dprs: tuple[float, ...]


# Phones and tablets at the common devices' viewport widths; laptop and
# desktop windows at any width of their range (people resize them).
DEVICES = (
    DeviceClass("phone", 0.5, (320, 360, 375, 390, 393, 412, 414, 428, 430), (2.0, 3.0)),
    DeviceClass("tablet", 0.1, (768, 800, 810, 820, 834, 1024), (1.5, 2.0)),
    DeviceClass("laptop", 0.25, range(1280, 1681), (1.0, 1.5, 2.0)),
    DeviceClass("desktop", 0.15, range(1681, 2561), (1.0, 1.5)),
)


@dataclass(frozen=True, slots=True)
class Browser:
    """One visitor: its viewport width in CSS px and its device pixel ratio."""

    kind: str
    css_width: int
    dpr: float

    @property
    def device_width(self) -> int:
        """The width it asks for, in device pixels."""
        return min(MAX_OUTPUT, round(self.css_width * self.dpr))


def browsers(count: int, seed: int = SEED) -> list[Browser]:
    """``count`` browsers drawn from ``DEVICES``: the same ones for a seed."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    weights = [device.weight for device in DEVICES]
    drawn: list[Browser] = []
    for _ in range(count):  # one browser at a time: fewer are the first of more
        device = rng.choices(DEVICES, weights)[0]
        drawn.append(Browser(device.name, rng.choice(device.widths), rng.choice(device.dprs)))
    return drawn


def request_path(name: str, width: int, fmt: str = FORMAT) -> str:
    """The service's path for ``name`` at ``width`` device pixels in ``fmt``."""
    return urls.url_path("service", urls.Variant(name, width, None, fmt))


@dataclass(frozen=True, slots=True)
class Workload:
    """What one round asks, the same for both variants."""

    names: tuple[str, ...]
    browsers: tuple[Browser, ...]
    ladder: tuple[int, ...] = LADDER
    fmt: str = FORMAT
    concurrency: int = PAGE_CONCURRENCY

    @classmethod
    def build(cls, names: Sequence[str], count: int = BROWSERS, seed: int = SEED) -> Workload:
        """``count`` browsers of ``seed`` loading a page of ``names``."""
        return cls(tuple(names), tuple(browsers(count, seed)))

    def bursts(self) -> list[list[str]]:
        """One wave per original: every ladder width of it, sent at once."""
        return [[request_path(name, step, self.fmt) for step in self.ladder] for name in self.names]

    def page_loads(self) -> list[str]:
        """Each browser's page in turn: every original once at its width."""
        return [
            request_path(name, browser.device_width, self.fmt)
            for browser in self.browsers
            for name in self.names
        ]

    def describe(self) -> dict[str, object]:
        """What the results record of the workload (the requests follow from it)."""
        widths = [b.device_width for b in self.browsers]
        kinds: dict[str, int] = {}
        for browser in self.browsers:
            kinds[browser.kind] = kinds.get(browser.kind, 0) + 1
        return {
            "originals": list(self.names),
            "browsers": len(self.browsers),
            "browser_kinds": kinds,
            "distinct_widths": len(set(widths)),
            "device_widths": {"min": min(widths), "median": statistics.median(widths),
                              "max": max(widths)},
            "ladder": list(self.ladder),
            "format": self.fmt,
            "page_requests": len(self.browsers) * len(self.names),
            "burst_requests": len(self.ladder) * len(self.names),
            "page_concurrency": self.concurrency,
        }  # fmt: skip


def widths_argument(ladder: Sequence[int]) -> list[str]:
    """The service's options for the ladder variant."""
    return ["--widths", ",".join(str(step) for step in ladder)]


def ladder_supported(python: str = sys.executable, cwd: str = competitors.ROOT) -> bool:
    """Whether the service takes ``--widths``: its ``--help`` lists it."""
    shown = subprocess.run(
        [python, "-m", "service", "--help"], cwd=cwd, capture_output=True, text=True, check=False
    )
    return shown.returncode == 0 and "--widths" in shown.stdout


# -- driving the load -------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """What one phase's requests saw, and how long they took together."""

    stats: LoadStats = field(default_factory=LoadStats)
    seconds: float = 0.0

    def figures(self) -> dict[str, object]:
        summary = self.stats.summary(self.seconds)
        keys = ("requests", "seconds", "rps", "latency_ms", "statuses", "errors", "cache")
        return {key: summary[key] for key in keys}


async def _get(session: aiohttp.ClientSession, url: str, phase: Phase, started: float) -> None:
    sent = time.perf_counter()
    try:
        async with session.get(url, allow_redirects=False) as reply:
            body = await reply.read()
            done = time.perf_counter()
            phase.stats.record(
                reply.status, (done - sent) * 1000, reply.headers.get("X-Cache"), len(body),
                done - started,
            )  # fmt: skip
    except TimeoutError:
        phase.stats.fail("timeout", (time.perf_counter() - sent) * 1000)
    except aiohttp.ClientError as error:
        phase.stats.fail(type(error).__name__, (time.perf_counter() - sent) * 1000)


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        auto_decompress=False,
    )


async def waves(base: str, groups: Sequence[Sequence[str]]) -> Phase:
    """Each group's requests sent at once; the next group once all have answered."""
    phase = Phase()
    async with _session(max(len(group) for group in groups)) as session:
        started = time.perf_counter()
        for group in groups:
            await asyncio.gather(*(_get(session, base + path, phase, started) for path in group))
        phase.seconds = time.perf_counter() - started
    return phase


async def in_order(base: str, paths: Sequence[str], concurrency: int) -> Phase:
    """Every path once, in order, ``concurrency`` connections taking the next."""
    phase = Phase()
    queue: Iterator[str] = iter(paths)
    async with _session(concurrency) as session:
        started = time.perf_counter()

        async def connection() -> None:
            for path in queue:  # one shared iterator: each path goes to one connection
                await _get(session, base + path, phase, started)

        await asyncio.gather(*(connection() for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - started
    return phase


# -- what the service says --------------------------------------------------------


def metric_value(exposition: str, name: str) -> float | None:
    """The sum of ``name``'s samples (every label set) in a Prometheus text
    exposition; None when it has none."""
    total: float | None = None
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        if sample.split("{", 1)[0] != name:
            continue
        total = (total or 0.0) + float(value)
    return total


def scrape(base_url: str) -> dict[str, float | None]:
    """The renders so far and the cache's entries and bytes, from /metrics
    (None: not exposed; no renders yet is 0)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=30) as reply:
        text = reply.read().decode()
    found = {key: metric_value(text, metric) for key, metric in METRICS.items()}
    found["renders"] = found["renders"] or 0.0
    return found


def disk_usage(directory: str) -> int:
    """``du``'s bytes on disk of ``directory`` (allocated blocks, not lengths)."""
    shown = subprocess.run(
        ["du", "-s", "--block-size=1", directory], capture_output=True, text=True, check=True
    )
    return int(shown.stdout.split()[0])


def measure(server: competitors.Server, cache_dir: str, workload: Workload) -> dict[str, object]:
    """One variant's round against a started, empty ``server``."""
    burst = asyncio.run(waves(server.base_url, workload.bursts()))
    after_burst = scrape(server.base_url)
    page = asyncio.run(in_order(server.base_url, workload.page_loads(), workload.concurrency))
    after = scrape(server.base_url)
    return {
        "burst": burst.figures(),
        "page": page.figures(),
        "renders_burst": after_burst["renders"],
        **after,
        "du_bytes": disk_usage(cache_dir),
    }


# -- the rounds -------------------------------------------------------------------

Starter = Callable[[str, Sequence[str]], competitors.Server]


def last_line(path: str) -> str:
    """A log's last non-empty line (a usage error is one), or ''."""
    try:
        with open(path, errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def run(
    workload: Workload,
    *,
    runs: int,
    start: Starter,
    workdir: str,
    ladder: bool,
    log: Callable[[str], None],
    into: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``runs`` rounds, each variant once a round (``ladder`` False: the
    plain one only); the results' ``pageload`` entry, filled in ``into`` as
    the runs go (a failure keeps what ran)."""
    variants: dict[str, list[str]] = {"plain": []}
    skipped: dict[str, str] = {}
    if ladder:
        variants["ladder"] = widths_argument(workload.ladder)
    else:
        skipped["ladder"] = "the service has no --widths option (python -m service --help)"
        log(f"  ladder variant skipped: {skipped['ladder']}")
    measured: dict[str, list[dict[str, object]]] = {name: [] for name in variants}
    commands: dict[str, object] = {}
    out = into if into is not None else {}
    out.update(
        workload=workload.describe(), variants=variants, commands=commands, skipped=skipped,
        runs=measured,
    )  # fmt: skip
    for repetition in range(runs):
        order = list(variants)
        shift = repetition % len(order)
        for variant in order[shift:] + order[:shift]:
            if variant in skipped:
                continue
            name = f"pageload-{repetition}-{variant}"
            server = start(name, variants[variant])
            commands.setdefault(variant, server.settings.get("command"))
            cache_dir = competitors.service_cache_dir(workdir, name)
            try:
                try:
                    server.wait_ready()
                except RuntimeError:
                    if server.process.returncode != 2:
                        raise
                    skipped[variant] = last_line(os.path.join(workdir, f"{name}.log"))
                    log(f"  {variant} variant skipped, the service refused it: {skipped[variant]}")
                    continue
                figures = measure(server, cache_dir, workload)
            finally:
                server.stop()
            measured[variant].append(figures)
            page = figures["page"]
            assert isinstance(page, dict)
            log(
                f"  page load run {repetition + 1} {variant}: {_count(figures['renders'])} "
                f"renders, {_count(figures['cache_entries'])} entries, "
                f"{figures['du_bytes']} bytes on disk; "
                f"page {page['rps']} req/s, p50 {page['latency_ms']['p50']} ms, "
                f"p99 {page['latency_ms']['p99']} ms"
            )
            shutil.rmtree(cache_dir, ignore_errors=True)  # the disk for the next
    for name in skipped:
        for table in (variants, commands, measured):
            table.pop(name, None)
    return out


def _count(value: object) -> str:
    return f"{value:.0f}" if isinstance(value, float) else str(value)
