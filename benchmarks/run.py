"""The benchmark: Image Factory vs the Flask + Pillow baseline (and thumbor, ipx).

    python -m benchmarks.run --quick     # make bench-quick: < 2 minutes
    python -m benchmarks.run             # make bench: every scenario, thumbor and ipx too

Scenarios (each against every competitor in the same run, the order of the
competitors rotated from one repetition to the next):
1. in-process cost per image, pyvips vs Pillow: ms and peak RSS, plus the
   in-process throughput of each library on all cores (run right after each
   repetition of the uncached c=4 load, which is divided by them);
2. uncached HTTP load over the corpus mix (every request a new variant) at
   concurrency 1, 4, 16; and the 4 MP JPEG alone at concurrency 4 (latency);
3. cache hits at concurrency 16;
4. memory: concurrency 16 over the largest images, peak RSS of each server's
   whole process tree (also sampled during every other load run);
5. formats: uncached load at concurrency 4 for JPEG, WebP and AVIF output;
8. remote originals (``--origin``, part of the full run): the service again,
   reading the same corpus from nginx on loopback (``benchmarks.origin``),
   against the local one: new variants of originals already in its source
   cache at concurrency 4, and result-cache hits at concurrency 16;
9. page load (``--pageload``, part of the full run; ``benchmarks.pageload``):
   browsers of many widths each asking every original once, after a burst of
   each original at every ladder width at once, against the service with
   and without its width ladder (``--widths``), a fresh service and cache
   each run: renders, cache entries and bytes, req/s and latency.

Writes ``benchmarks/results/<date>.json`` (every figure and the machine),
``<date>.md`` (the tables) and ``<date>.png`` (the chart), and copies them to
``latest.*`` (``latest-quick.*`` for ``--quick``). Loopback only; every
load run is bounded by its duration (scenario 9's by its list of requests).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import competitors, corpus, node, origin, pageload, proctree, report, urls, wrk

RESULTS_DIR = os.path.join(competitors.ROOT, "benchmarks", "results")
# The series whose repetitions the in-process loops follow: the targets'
# (report.LOOPS_PAIRED_WITH names it).
PAIRED_CONCURRENCY = 4
CORES = os.cpu_count() or 1
T = TypeVar("T")
# Whose answered variants each in-process loop renders when paired.
LOOP_COUNTERPARTS = {"vips": "service", "service": "service", "pillow": "baseline"}
# Plan's field ``pageload`` would shadow the module in its class body.
PAGELOAD_BROWSERS = pageload.BROWSERS


@dataclass(frozen=True, slots=True)
class Plan:
    """What one invocation measures, and for how long."""

    runs: int
    seconds: float
    concurrencies: tuple[int, ...]
    hit_seconds: float
    memory_runs: int
    memory_seconds: float
    formats: tuple[str, ...]
    latency: bool
    libcost_repeat: int
    loop_seconds: float
    loop_runs: int  # repetitions of the in-process loops
    thumbor: bool
    # ipx (Node + sharp, benchmarks.node): skipped, with its reason, where
    # Node cannot be set up.
    ipx: bool = False
    # At most this many of the answered variants in a paired loop (None: all).
    loop_variants: int | None = None
    # Scenario 8: the service reading its originals from an HTTP origin.
    origin: bool = False
    # Scenario 9: the page load, its browsers and originals (empty: the mix).
    pageload: bool = False
    pageload_browsers: int = PAGELOAD_BROWSERS
    pageload_images: tuple[str, ...] = ()


# make bench-quick must finish in 2 minutes from a fresh clone, 35 s of
# which go to fetching the corpus and setting up the baseline's venv: one
# render per image in scenario 1, 1.5 s cache-hit runs and paired loops over
# the first 24 answered variants (two of each image; all ~55 took 15 s more)
# keep it at ~115 s. Scenario 8 (--origin) stays out: its three sides took
# 65 s more; so does scenario 9 (--pageload), a fresh service per run.
QUICK = Plan(
    runs=3, seconds=4, concurrencies=(4,), hit_seconds=1.5, memory_runs=1, memory_seconds=4,
    formats=(), latency=False, libcost_repeat=1, loop_seconds=2, loop_runs=1, thumbor=False,
    loop_variants=24,
)  # fmt: skip
FULL = Plan(
    runs=3, seconds=8, concurrencies=(1, 4, 16), hit_seconds=5, memory_runs=3, memory_seconds=8,
    formats=("jpeg", "webp", "avif"), latency=True, libcost_repeat=3, loop_seconds=8, loop_runs=3,
    thumbor=True, ipx=True, origin=True, pageload=True,
)  # fmt: skip


@dataclass(slots=True)
class Bench:
    plan: Plan
    originals: str
    workdir: str
    servers: list[competitors.Server] = field(default_factory=list)
    pools: dict[str, urls.VariantPool] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict)
    # The in-process loops, by library: run beside the uncached c=4 series
    # when it runs (inprocess_loops), else in scenario 1.
    pair_loops: bool = False
    loops: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    # The stretch of its pool each server answered in its latest uncached
    # run: (first variant, requests answered). The paired loops render it.
    stretches: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Scenario 8: nginx serving the originals, and the service reading them
    # from it (neither is in ``servers``: no other scenario runs them).
    nginx: origin.Nginx | None = None
    remote: competitors.Server | None = None
    # Scenario 9: starts a service of its own, fresh, by name, with options.
    service_starter: pageload.Starter | None = None

    # -- helpers -----------------------------------------------------------

    @property
    def quality_args(self) -> list[str]:
        return quality_args()

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def rotated(self, repetition: int) -> list[competitors.Server]:
        return rotated(self.servers, repetition)

    def load(
        self,
        server: competitors.Server,
        paths: list[str],
        *,
        concurrency: int,
        seconds: float,
        label: str,
    ) -> dict[str, object]:
        """One wrk run against ``server``, with its tree sampled."""
        paths_file = urls.paths_file(self.workdir, f"{label}-{server.name}")
        urls.write_paths(paths_file, paths)
        pids = proctree.tree(server.pid)
        cpu_before = proctree.cpu_seconds(pids)
        with proctree.Sampler(server.pid) as sampler:
            result = wrk.run(server.base_url, paths_file, concurrency=concurrency, seconds=seconds)
        cpu = proctree.cpu_seconds(proctree.tree(server.pid)) - cpu_before
        wait_idle(server.pid)
        figures: dict[str, object] = result.as_dict()
        figures.update(sampler.peak.as_dict())
        figures["server_cpu_ms_per_request"] = (
            round(1000 * cpu / result.requests, 2) if result.requests else None
        )
        if result.non_2xx or sum(result.errors.values()):
            self.log(f"  {server.name}: statuses {result.statuses} errors {result.errors}")
        return figures

    def uncached_series(
        self,
        scenario: str,
        names: list[str],
        concurrency: int,
        seconds: float,
        fmt: str | None,
        *,
        between: Callable[[int], None] | None = None,
    ) -> dict[str, list[dict[str, object]]]:
        """``runs`` repetitions, every competitor each time, fresh variants;
        ``between(repetition)`` after each repetition."""
        series: dict[str, list[dict[str, object]]] = {s.name: [] for s in self.servers}
        budget = variants_per_run(seconds)
        for repetition in range(self.plan.runs):
            for server in self.rotated(repetition):
                pool = self.pools.setdefault(
                    f"{server.name}:{','.join(names)}", urls.VariantPool(names)
                )
                start = pool.used
                variants = pool.take(budget, fmt)
                paths = [urls.url_path(server.name, v) for v in variants]
                figures = self.load(
                    server, paths, concurrency=concurrency, seconds=seconds,
                    label=f"{scenario}-{repetition}",
                )  # fmt: skip
                answered = figures["requests"]
                # The variants never asked for go back to the pool (an
                # older wrk script's result has no count: keep them all).
                reached = figures.get("reached", len(paths))
                assert isinstance(answered, int)
                assert isinstance(reached, int)
                pool.give_back(start, reached)
                self.stretches[server.name] = (start, answered)
                if figures["wraps"]:
                    self.log(f"  {server.name}: the URL list wrapped; some requests were hits")
                series[server.name].append(figures)
                self.log(
                    f"  {scenario} run {repetition + 1} {server.name}: "
                    f"{figures['rps']} req/s, p50 {_ms(figures, 'p50')}, "
                    f"p99 {_ms(figures, 'p99')}, peak RSS {figures['peak_rss_mib']} MiB"
                )
            if between is not None:
                between(repetition)
        return series

    # -- scenarios ---------------------------------------------------------

    def libcost(self) -> None:
        self.log("scenario 1: in-process cost per image (pyvips vs Pillow)")
        names = [e.name for e in corpus.CORPUS]
        pythons = library_pythons()
        warmup = os.path.join(self.originals, "grace_hopper.jpg")
        per_image: dict[str, dict[str, Any]] = {}
        for index, name in enumerate(names):
            repeat = 1 if name == "kleiber-46mp.png" else self.plan.libcost_repeat
            order = ["vips", "service", "pillow"]
            order = order if index % 2 == 0 else order[::-1]
            row: dict[str, Any] = {}
            for library in order:
                argv = [
                    pythons[library], "-m", "benchmarks.libcost", "--library", library,
                    "--image", os.path.join(self.originals, name), "--repeat", str(repeat),
                    "--warmup", warmup, *self.quality_args,
                ]  # fmt: skip
                row[library] = _json_run(argv, library_environment(library))
            vips_ms = float(row["vips"]["ms_median"])
            pillow_ms = float(row["pillow"]["ms_median"])
            row["speedup"] = round(pillow_ms / vips_ms, 3) if vips_ms else None
            per_image[name] = row
            self.log(
                f"  {name}: vips {vips_ms:.0f} ms, service path "
                f"{float(row['service']['ms_median']):.0f} ms, Pillow {pillow_ms:.0f} ms"
            )
        mix = corpus.mix_names()
        vips_total = sum(float(per_image[n]["vips"]["ms_median"]) for n in mix)
        pillow_total = sum(float(per_image[n]["pillow"]["ms_median"]) for n in mix)
        libcost: dict[str, Any] = {
            "per_image": per_image,
            "mix_ms_total": {"vips": round(vips_total, 1), "pillow": round(pillow_total, 1)},
            "mix_speedup": round(pillow_total / vips_total, 3),
            "settings": "per image: width 800; in-process throughput: the load runs' "
            "widths (benchmarks.urls.VariantPool); original's format, the service's quality "
            "defaults "
            f"({' '.join(self.quality_args)}); "
            "libvips: thumbnail(size=down), VIPS_CONCURRENCY=1, cache off; "
            "service path: service.render.render, the same settings; "
            "Pillow: Image.thumbnail defaults",
        }
        stored = self.results.setdefault("libcost", {})
        assert isinstance(stored, dict)
        stored.update(libcost)
        if not self.pair_loops:
            for repetition in range(self.plan.loop_runs):
                self.inprocess_loops(repetition)
            self.store_loops(paired=False)

    def inprocess_loops(self, repetition: int) -> None:
        """One repetition of the in-process loops, one per library, rotated.

        At the load runs' widths (VariantPool), not at 800 px: the load is
        compared with these, so both must render the same sizes. When the
        uncached c=4 series runs, each of its repetitions is followed by one
        of these (``pair_loops``), so that every ratio of the load to the
        loops compares figures taken within the same minute, not a quarter
        of an hour apart as when the loops ran in scenario 1, and of the
        same work: each library's loop renders exactly the variants its
        server answered in that repetition (pyvips and the service's path
        the service's, Pillow the baseline's). (Loops from the pool's start
        rendered narrower outputs than the first c=4 repetitions asked for;
        time-bounded loops over a repetition's stretch covered a different
        length of it than the server, up to 3.5 % in mean width.) The first
        ``loop_runs`` repetitions get one: the quick run does them after its
        first only (its budget is 2 minutes from a fresh clone)."""
        if repetition >= self.plan.loop_runs:
            return
        pythons = library_pythons()
        for library in rotated(["vips", "service", "pillow"], repetition):
            stretch = self.stretches.get(LOOP_COUNTERPARTS[library]) if self.pair_loops else None
            if stretch is not None and self.plan.loop_variants is not None:
                stretch = (stretch[0], min(stretch[1], self.plan.loop_variants))
            figures = self.inprocess_throughput(
                pythons[library], library, corpus.mix_names(), stretch=stretch
            )
            self.loops.setdefault(library, []).append(figures)

    def paired_loops(self, repetition: int) -> None:
        """``inprocess_loops`` after a load repetition; a failure there is
        recorded and ends the loops, not the load series around them."""
        if "loops" in self.failures:
            return
        try:
            self.inprocess_loops(repetition)
        except Exception as error:
            self.log(f"in-process loops failed: {error!r}")
            self.failures["loops"] = repr(error)

    @property
    def failures(self) -> dict[str, str]:
        failures = self.results.setdefault("failures", {})
        assert isinstance(failures, dict)
        return failures

    def store_loops(self, *, paired: bool) -> None:
        if not self.loops:
            return
        libcost = self.results.setdefault("libcost", {})
        assert isinstance(libcost, dict)
        libcost["inprocess_rps"] = {
            library: statistics.median(run["rps"] for run in runs)
            for library, runs in self.loops.items()
        }
        libcost["inprocess_cpu_ms_per_render"] = {
            library: statistics.median(run["cpu_ms_per_render"] for run in runs)
            for library, runs in self.loops.items()
        }
        libcost["inprocess_runs"] = self.loops
        # Run i of each loop followed repetition i of the uncached c=4 series.
        libcost["inprocess_paired_with"] = report.LOOPS_PAIRED_WITH if paired else None

    def inprocess_throughput(
        self,
        python: str,
        library: str,
        mix: list[str],
        *,
        stretch: tuple[int, int] | None = None,
    ) -> dict[str, float]:
        """Renders per second of ``library`` with one process per core over
        the mix, and the CPU time (all threads) per render. With ``stretch``
        (first variant, count), each process renders exactly those variants
        of the pool, from its own lane; else the pool from its start for
        ``loop_seconds``."""
        paths = ",".join(os.path.join(self.originals, n) for n in mix)
        argv = [
            python, "-m", "benchmarks.libcost", "--library", library, "--images", paths,
            *self.quality_args,
        ]  # fmt: skip
        if stretch is not None and stretch[1] >= CORES:
            start, count = stretch
            lanes = [
                ["--offset", str(start), "--stretch", str(count), "--lane", str(i * count // CORES)]
                for i in range(CORES)
            ]
        else:
            stretch = None
            lanes = [
                [
                    "--loop-seconds",
                    str(self.plan.loop_seconds),
                    "--offset",
                    str(i * len(mix) // CORES),
                ]
                for i in range(CORES)
            ]
        started = time.monotonic()
        processes = [
            subprocess.Popen(
                [*argv, *lane],
                cwd=competitors.ROOT,
                env=library_environment(library),
                stdout=subprocess.PIPE,
                text=True,
            )
            for lane in lanes
        ]
        outputs: list[dict[str, Any]] = [json.loads(p.communicate()[0]) for p in processes]
        wall = time.monotonic() - started
        renders = sum(int(o["renders"]) for o in outputs)
        seconds = max(float(o["seconds"]) for o in outputs)
        cpu = sum(float(o["cpu_seconds"]) for o in outputs)
        rps = renders / seconds
        cpu_ms = 1000 * cpu / renders
        self.log(
            f"  in-process {library}, {CORES} processes: {rps:.1f} renders/s, "
            f"{cpu_ms:.1f} ms CPU per render ({wall:.1f} s)"
        )
        figures: dict[str, float] = {"rps": round(rps, 2), "cpu_ms_per_render": round(cpu_ms, 2)}
        if stretch is not None:
            figures["pool_start"], figures["stretch"] = stretch
        return figures

    def uncached(self) -> None:
        mix = corpus.mix_names()
        table: dict[str, object] = {}
        # Filled as it goes: a failure later in the scenario keeps what ran.
        self.results["uncached"] = table
        for concurrency in self.plan.concurrencies:
            self.log(f"scenario 2: uncached over the mix, concurrency {concurrency}")
            paired = self.pair_loops and concurrency == PAIRED_CONCURRENCY
            try:
                table[str(concurrency)] = self.uncached_series(
                    f"uncached-c{concurrency}", mix, concurrency, self.plan.seconds, None,
                    between=self.paired_loops if paired else None,
                )  # fmt: skip
            finally:
                if paired:
                    self.store_loops(paired=True)
        if self.plan.latency:
            self.log("scenario 2b: the 4 MP JPEG alone, concurrency 4 (latency)")
            with fresh_copies(self.originals, corpus.FOUR_MP, LATENCY_COPIES) as names:
                self.results["latency_4mp"] = self.uncached_series(
                    "latency-4mp", names, 4, self.plan.seconds, None
                )

    def cache_hits(self) -> None:
        self.log("scenario 3: cache hits, concurrency 16")
        variants = urls.fixed_variants(corpus.mix_names(), 400)
        series: dict[str, list[dict[str, object]]] = {s.name: [] for s in self.servers}
        # The same variants from every server: their sizes side by side
        # (output parity; ipx, which has no result cache, renders them again
        # on every request).
        sizes: dict[str, dict[str, int]] = {s.name: {} for s in self.servers}
        self.results["output_bytes"] = sizes
        for server in self.servers:
            for variant in variants:  # warm: every path is a hit from now on
                status, _, length = competitors.fetch(
                    server.base_url + urls.url_path(server.name, variant)
                )
                if status != 200:
                    raise RuntimeError(f"{server.name}: warming {variant} gave {status}")
                sizes[server.name][variant.name] = length
        for repetition in range(self.plan.runs):
            for server in self.rotated(repetition):
                paths = [urls.url_path(server.name, v) for v in variants]
                figures = self.load(
                    server, paths, concurrency=16, seconds=self.plan.hit_seconds,
                    label=f"hits-{repetition}",
                )  # fmt: skip
                series[server.name].append(figures)
                self.log(f"  hits run {repetition + 1} {server.name}: {figures['rps']} req/s")
        self.results["cache_hits"] = series

    def memory(self) -> None:
        self.log("scenario 4: memory, concurrency 16 over the largest images")
        runs = self.plan.runs
        saved, self.plan = self.plan, _replace_runs(self.plan, self.plan.memory_runs)
        try:
            self.results["memory_largest"] = self.uncached_series(
                "memory-largest", list(corpus.LARGEST), 16, self.plan.memory_seconds, "jpeg"
            )
        finally:
            self.plan = saved
        assert self.plan.runs == runs

    def formats(self) -> None:
        table: dict[str, object] = {}
        for fmt in self.plan.formats:
            self.log(f"scenario 5: uncached, concurrency 4, {fmt} output")
            table[fmt] = self.uncached_series(
                f"format-{fmt}", corpus.mix_names(), 4, self.plan.seconds, fmt
            )
        if table:
            self.results["formats"] = table

    def page_load(self) -> None:
        """Scenario 9 (``benchmarks.pageload``): the same page-load requests
        against a fresh service without and with ``--widths``, each run; the
        ladder variant only where the service takes the option."""
        assert self.service_starter is not None
        names = self.plan.pageload_images or tuple(corpus.mix_names())
        workload = pageload.Workload.build(names, self.plan.pageload_browsers)
        described = workload.describe()
        self.log(
            f"scenario 9: page load, {described['browsers']} browsers x {len(names)} originals "
            f"({described['distinct_widths']} distinct widths), with and without --widths"
        )
        table: dict[str, Any] = {}
        # Filled as it goes: a failure later in the scenario keeps what ran.
        self.results["pageload"] = table
        pageload.run(
            workload, runs=self.plan.runs, start=self.service_starter, workdir=self.workdir,
            ladder=pageload.ladder_supported(), log=self.log, into=table,
        )  # fmt: skip

    def remote_originals(self) -> None:
        """Scenario 8: the service reading the corpus from nginx (``remote``)
        against the service reading it from disk and the baseline, rotated:
        (a) every request a new variant of an original already in the
        remote's source cache, the same variants for both services, at
        c=4; (b) result-cache hits at c=16. What nginx was asked in each
        phase is recorded: (a) and (b) should cost a revalidation per
        original and ``--source-ttl`` (60 s) at most."""
        assert self.nginx is not None
        assert self.remote is not None
        nginx = self.nginx
        local = next(s for s in self.servers if s.name == "service")
        baseline = next(s for s in self.servers if s.name == "baseline")
        sides = [local, self.remote, baseline]
        mix = corpus.mix_names()
        hit_set = urls.fixed_variants(mix, 400)
        table: dict[str, object] = {}
        self.results["origin"] = table
        asked: dict[str, dict[str, int]] = {}
        table["origin_requests"] = asked
        before = nginx.requests()

        def phase(name: str) -> None:
            nonlocal before
            now = nginx.requests()
            asked[name], before = dict(now - before), now

        self.log("scenario 8: remote originals from nginx; warming the source cache")
        for server in sides:  # every original downloaded; the hit set cached
            for variant in hit_set:
                path = urls.url_path(server.name, variant)
                status, _, _ = competitors.fetch(server.base_url + path)
                if status != 200:
                    raise RuntimeError(f"{server.name}: warming {variant} gave {status}")
        phase("warm")
        self.log(f"  nginx answered {asked['warm']} while warming")
        budget = variants_per_run(self.plan.seconds)
        sources: dict[str, list[dict[str, object]]] = {s.name: [] for s in sides}
        for repetition in range(self.plan.runs):
            # One list for both services: the same requests, each a variant
            # neither has rendered (the local one's pool goes on where the
            # earlier scenarios left it).
            shared = self.pools.setdefault(f"service:{','.join(mix)}", urls.VariantPool(mix))
            variants = {
                "service": shared.take(budget),
                "baseline": self.pools.setdefault(
                    f"baseline:{','.join(mix)}", urls.VariantPool(mix)
                ).take(budget),
            }
            variants[report.REMOTE] = variants["service"]
            for server in rotated(sides, repetition):
                paths = [urls.url_path(server.name, v) for v in variants[server.name]]
                figures = self.load(
                    server, paths, concurrency=PAIRED_CONCURRENCY, seconds=self.plan.seconds,
                    label=f"origin-sources-{repetition}",
                )  # fmt: skip
                sources[server.name].append(figures)
                self.log(
                    f"  source-cache hits run {repetition + 1} {server.name}: "
                    f"{figures['rps']} req/s, p50 {_ms(figures, 'p50')}, "
                    f"CPU {figures['server_cpu_ms_per_request']} ms a request"
                )
        table["source_hits"] = sources
        phase("source_hits")
        hits: dict[str, list[dict[str, object]]] = {s.name: [] for s in sides}
        for repetition in range(self.plan.runs):
            for server in rotated(sides, repetition):
                paths = [urls.url_path(server.name, v) for v in hit_set]
                figures = self.load(
                    server, paths, concurrency=16, seconds=self.plan.hit_seconds,
                    label=f"origin-hits-{repetition}",
                )  # fmt: skip
                hits[server.name].append(figures)
                run = f"result-cache hits run {repetition + 1}"
                self.log(f"  {run} {server.name}: {figures['rps']} req/s")
        table["cache_hits"] = hits
        phase("cache_hits")
        self.log(f"  nginx answered {asked['source_hits']} and {asked['cache_hits']} meanwhile")


def setup_ipx(wanted: bool) -> tuple[str | None, str | None]:
    """(ipx's node_modules, None) once ipx is set up (``benchmarks.node``);
    (None, the one-line reason) when Node or ipx cannot be installed here;
    (None, None) when the run has no ipx."""
    if not wanted:
        return None, None
    reason = node.skip_reason()
    return (None, reason) if reason else (node.modules_dir(), None)


def pairs_loops(plan: Plan, only: set[str] | None) -> bool:
    """Whether the in-process loops run beside the uncached c=4 series
    (``Bench.inprocess_loops``) rather than in scenario 1: when that series
    runs at all."""
    runs_uncached = only is None or "uncached" in only
    return runs_uncached and PAIRED_CONCURRENCY in plan.concurrencies


def rotated(items: list[T], repetition: int) -> list[T]:
    """``items`` started at a different one each repetition, so that no
    competitor always runs first (or right after the same other one)."""
    shift = repetition % len(items)
    return items[shift:] + items[:shift]


# Names the 4 MP JPEG is asked under in its own scenario. The service keys
# its cache by the output, so under its own name the widths the mix's runs
# rendered were hits (2,465 req/s where ipx rendered 62), and one name has
# only the pool's 500 widths, fewer than a server answers in three runs.
LATENCY_COPIES = 16


@contextlib.contextmanager
def fresh_copies(originals: str, name: str, copies: int) -> Iterator[list[str]]:
    """``copies`` hard links of ``originals/name`` in a new folder of
    ``originals`` (each an original no server has seen: a new identity),
    as paths under ``originals``; the folder is removed afterwards."""
    folder = tempfile.mkdtemp(prefix="fresh-", dir=originals)
    try:
        linked = corpus.hard_links(originals, [name], folder, copies)
        yield [os.path.join(os.path.basename(folder), copy) for copy in linked]
    finally:
        shutil.rmtree(folder)


def _replace_runs(plan: Plan, runs: int) -> Plan:
    from dataclasses import replace  # noqa: PLC0415

    return replace(plan, runs=runs)


def _ms(figures: dict[str, object], key: str) -> str:
    latency = figures["latency_ms"]
    assert isinstance(latency, dict)
    return f"{latency[key]:.0f} ms"


def variants_per_run(seconds: float) -> int:
    """The variants one uncached run takes from its pool: far more than any
    competitor renders in ``seconds`` (160 a second), so no URL repeats."""
    return max(200, int(seconds * 160))


def quality_args() -> list[str]:
    """``benchmarks.libcost``'s options for the service's output defaults."""
    quality, effort = competitors.service_defaults()
    return ["--quality", competitors.quality_list(quality), "--avif-effort", str(effort)]


def library_python(library: str) -> str:
    """The interpreter that has ``library`` (``library_pythons``), setting
    up the baseline's venv only for Pillow."""
    return competitors.ensure_venv("baseline") if library == "pillow" else sys.executable


def library_pythons() -> dict[str, str]:
    """The interpreter that has each library of the in-process measurements:
    the project's for pyvips and the service's path, the baseline's venv for
    Pillow."""
    return {library: library_python(library) for library in ("vips", "service", "pillow")}


def library_environment(library: str) -> dict[str, str]:
    """The environment of an in-process measurement: the service's render
    path runs with the allocator settings the service gives itself (they
    cost it CPU: leaving them out flattered the in-process figure); plain
    pyvips and Pillow keep glibc's defaults, as their users have them."""
    if library != "service":
        return dict(os.environ)
    from service.process.allocator import is_glibc, tuned_environment  # noqa: PLC0415

    return tuned_environment(os.environ, glibc=is_glibc()) or dict(os.environ)


def _json_run(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        argv, cwd=competitors.ROOT, env=env, capture_output=True, text=True, check=True
    )
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def wait_idle(root: int, *, threshold: float = 0.05, timeout: float = 60.0) -> None:
    """Wait until ``root``'s tree stops using CPU (requests left over drained)."""
    deadline = time.monotonic() + timeout
    previous = proctree.cpu_seconds(proctree.tree(root))
    while time.monotonic() < deadline:
        time.sleep(0.25)
        current = proctree.cpu_seconds(proctree.tree(root))
        if current - previous < threshold * 0.25:
            return
        previous = current


def summarize_results(results: dict[str, object]) -> dict[str, object]:
    """Medians, spreads and ratios of every series, and the issue's targets."""
    return report.summarize_all(results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the < 2 minute subset")
    parser.add_argument("--thumbor", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--ipx",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ipx (Node + sharp, set up in .bench-node/) as a competitor (part of the full run)",
    )
    parser.add_argument("--runs", type=int, help="repetitions of each load run (>= 3 for medians)")
    parser.add_argument("--seconds", type=float, help="duration of each uncached run")
    parser.add_argument("--concurrencies", help="uncached concurrencies, e.g. 1,4,16")
    parser.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the 4 MP JPEG alone at concurrency 4",
    )
    parser.add_argument("--service-workers", type=int, default=CORES)
    parser.add_argument("--service-concurrency", type=int, help="renders per worker")
    parser.add_argument("--service-total-concurrency", type=int, help="renders over all workers")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the service (to measure e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument(
        "--origin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scenario 8, the originals from nginx on loopback (part of the full run)",
    )
    parser.add_argument(
        "--pageload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scenario 9, the page load with and without --widths (part of the full run; "
        "alone: --only pageload, or make bench-pageload)",
    )
    parser.add_argument(
        "--pageload-browsers", type=int, help=f"browsers of scenario 9 ({pageload.BROWSERS})"
    )
    parser.add_argument(
        "--pageload-images", help="comma-separated originals of scenario 9 (the mix)"
    )
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    parser.add_argument("--out", default=RESULTS_DIR)
    parser.add_argument(
        "--only", help="comma-separated: libcost,uncached,hits,memory,formats,origin,pageload"
    )
    parser.add_argument(
        "--compare-with",
        metavar="CHECKOUT",
        help="also run the service of another checkout (e.g. a git worktree of the commit "
        "before a change) as 'before', in the same rounds: an A/B of two commits",
    )
    parser.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for 'before' alone, over --service-env: an A/B of one setting "
        "with --compare-with . (e.g. IMAGE_FACTORY_MEZZANINE=false)",
    )
    parser.add_argument(
        "--compare-workers",
        type=int,
        metavar="N",
        help="--workers for 'before' alone: with --compare-with . an A/B of the process "
        "count (e.g. --service-workers 1 --compare-workers 2)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915 - one linear script
    parser = build_parser()
    args = parser.parse_args(argv)

    from dataclasses import replace  # noqa: PLC0415

    plan = QUICK if args.quick else FULL
    if args.thumbor is not None:
        plan = replace(plan, thumbor=args.thumbor)
    if args.ipx is not None:
        plan = replace(plan, ipx=args.ipx)
    if args.runs:
        plan = replace(plan, runs=args.runs)
    if args.seconds:
        plan = replace(plan, seconds=args.seconds)
    if args.concurrencies:
        plan = replace(plan, concurrencies=tuple(int(c) for c in args.concurrencies.split(",")))
    if args.latency is not None:
        plan = replace(plan, latency=args.latency)
    if args.origin is not None:
        plan = replace(plan, origin=args.origin)
    if args.pageload is not None:
        plan = replace(plan, pageload=args.pageload)
    if args.pageload_browsers:
        plan = replace(plan, pageload_browsers=args.pageload_browsers)
    if args.pageload_images:
        plan = replace(plan, pageload_images=tuple(args.pageload_images.split(",")))

    started = time.monotonic()
    only = set(args.only.split(",")) if args.only else None
    # Scenario 9 starts services of its own and drives them itself: run
    # alone, it needs neither wrk nor the competitors (the chart needs the
    # baseline's venv all the same).
    shared = only is None or bool(only - {"pageload"})
    if shared:
        wrk.ensure_installed()
    corpus.build(args.corpus)
    competitors.ensure_venv("baseline")
    if plan.thumbor and shared:
        competitors.ensure_venv("thumbor")
    ipx_modules, ipx_skipped = setup_ipx(plan.ipx and shared)
    originals = corpus.originals_dir(args.corpus)
    runs_origin = plan.origin and (only is None or "origin" in only)
    runs_pageload = plan.pageload and (only is None or "pageload" in only)
    if runs_origin:
        origin.ensure_installed()
    workdir = tempfile.mkdtemp(prefix="image-factory-bench-")
    bench = Bench(plan, originals, workdir, pair_loops=pairs_loops(plan, only))
    bench.log(f"setup done in {time.monotonic() - started:.0f} s; scratch {workdir}")
    bench.results["plan"] = {k: getattr(plan, k) for k in plan.__dataclass_fields__}
    bench.results["machine"] = competitors.describe_machine()
    bench.results["started"] = datetime.datetime.now().isoformat(timespec="seconds")
    if ipx_skipped:
        bench.log(ipx_skipped)
        bench.results["skipped"] = {"ipx": ipx_skipped}
    with open(os.path.join(args.corpus, "MANIFEST.json")) as handle:
        bench.results["corpus"] = json.load(handle)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("libcost", bench.libcost),
        ("uncached", bench.uncached),
        ("hits", bench.cache_hits),
        ("memory", bench.memory),
        ("formats", bench.formats),
    ]
    if runs_origin:
        steps.append(("origin", bench.remote_originals))
    if runs_pageload:
        steps.append(("pageload", bench.page_load))

    def start_service(
        name: str = "service",
        checkout: str | None = None,
        originals_spec: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> competitors.Server:
        env = dict(item.split("=", 1) for item in args.service_env)
        workers = args.service_workers
        if name == report.BEFORE:
            env.update(item.split("=", 1) for item in args.compare_env)
            workers = args.compare_workers or workers
        return competitors.start_service(
            originals_spec or originals,
            workdir,
            workers=workers,
            concurrency=args.service_concurrency,
            total_concurrency=args.service_total_concurrency,
            env=env,
            name=name,
            checkout=checkout,
            extra_args=extra_args,
        )

    # No drain at the end of each of its runs: stopping is not measured.
    bench.service_starter = lambda name, options: start_service(
        name, extra_args=[*options, "--drain-seconds", "0"]
    )
    try:
        starters: list[Callable[[], competitors.Server]] = []
        if shared:
            starters += [
                start_service,
                lambda: competitors.start_baseline(originals, workdir, workers=CORES),
            ]
        if args.compare_with and shared:
            # The same settings, from the other checkout: an A/B of two commits.
            starters.append(lambda: start_service(report.BEFORE, args.compare_with))
        if plan.thumbor and shared:
            starters.append(lambda: competitors.start_thumbor(originals, workdir, processes=2))
        if ipx_modules is not None:
            modules = ipx_modules
            starters.append(
                lambda: competitors.start_ipx(originals, workdir, modules=modules, cores=CORES)
            )
        for start in starters:
            bench.servers.append(start())
        if runs_origin:
            bench.nginx = origin.start(originals, os.path.join(workdir, "nginx"))
            bench.remote = start_service(report.REMOTE, originals_spec=bench.nginx.base_url + "/")
        for server in bench.servers + ([bench.remote] if bench.remote else []):
            server.wait_ready()
        settings = {s.name: s.settings for s in bench.servers}
        if bench.nginx is not None and bench.remote is not None:
            settings[report.REMOTE] = bench.remote.settings
            settings["nginx"] = bench.nginx.settings
        bench.results["competitors"] = settings
        for name, step in steps:
            if only is None or name in only:
                try:
                    step()
                except Exception as error:  # keep the other scenarios' figures
                    bench.log(f"scenario {name} failed: {error!r}")
                    bench.failures[name] = repr(error)
    finally:
        for server in bench.servers + ([bench.remote] if bench.remote else []):
            server.stop()
        if bench.nginx is not None:
            bench.nginx.stop()
    bench.results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    bench.results["summary"] = summarize_results(bench.results)
    written = write_outputs(bench.results, args.out, latest_name(args))
    print(report.markdown(bench.results))
    bench.log(f"done in {bench.results['elapsed_seconds']} s: {', '.join(written)}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def latest_name(args: argparse.Namespace) -> str | None:
    """What the run may overwrite besides its dated files: ``latest`` (which
    the READMEs quote) only for a whole run as ``make bench`` makes it,
    ``latest-quick`` for ``make bench-quick``; a partial or re-configured
    run (``--only``, other concurrencies, service options) writes only its
    dated files."""
    changed = (
        args.only,
        os.path.abspath(args.corpus) != os.path.join(competitors.ROOT, corpus.DEFAULT_DIR),
        args.runs,
        args.seconds,
        args.concurrencies,
        args.latency is not None,
        args.thumbor is not None,
        args.ipx is not None,
        args.origin is not None,
        args.pageload is not None,
        args.pageload_browsers,
        args.pageload_images,
        args.service_concurrency,
        args.compare_with,
        args.compare_workers,
        args.service_total_concurrency,
        args.service_env,
        args.service_workers != CORES,
    )
    if any(changed):
        return None
    return "latest-quick" if args.quick else "latest"


def results_stamp() -> str:
    """The date part of a results file's name (``2026-12-01-193645``)."""
    return datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")


def measured_commit() -> str | None:
    """The checkout measured, with ``-dirty`` when it has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=competitors.ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=competitors.ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if changes else "")


def write_outputs(results: dict[str, object], directory: str, latest: str | None) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, results_stamp())
    with open(base + ".json", "w") as out:
        json.dump(results, out, indent=1)
    with open(base + ".md", "w") as out:
        out.write(report.markdown(results))
    written = [base + ".json", base + ".md"]
    python = competitors.ensure_venv("baseline")
    chart = subprocess.run(
        [python, "-m", "benchmarks.chart", base + ".json", base + ".png"],
        cwd=competitors.ROOT,
        check=False,
    )
    if chart.returncode == 0:
        written.append(base + ".png")
    if latest is not None:
        for path in written:
            shutil.copyfile(path, os.path.join(directory, latest + os.path.splitext(path)[1]))
    return written


if __name__ == "__main__":
    sys.exit(main())
