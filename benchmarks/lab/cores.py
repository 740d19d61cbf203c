"""Same moment, one core each: a server against an in-process loop of its library.

    python -m benchmarks.lab.cores        # make bench-cores, about 8 minutes

The throughput targets compare a server with its library rendering in
process, but on the 2-core machines we measure on the same work costs 15-40 %
more from one minute to the next, so a server measured in one minute and its
library in the next differ by the machine as much as by the code (the full
runs' "vs in-process pyvips" ranged over 0.72-0.89 in one day). Here both
run at the same moment instead, each pinned to a core of its own:

- the server with one process and one render at a time (the service:
  ``--workers 1 --concurrency 1 --total-concurrency 1``; the baseline: one
  gunicorn sync worker) and its ``wrk`` client with 2 connections (one
  request renders while the next waits, so the core never idles between
  requests), on one core;
- ``benchmarks.libcost``'s loop over the same variants from the same start,
  on the other core, told to start just before ``wrk`` starts, and counted
  over as many renders as the server answered (its time after each render
  is recorded), so that both sides are measured over the same variants.

Then the two swap cores, and that is one round. Each pair gives the server's
req/s over the loop's renders/s, and the loop's CPU per render over the
server's per request. Pairings:

- ``service:vips``: the issue's target, the service against plain pyvips;
- ``service:service-path``: what the server adds to its own render path
  (HTTP, cache, keys, workers), in process with the same allocator settings;
- ``baseline:pillow``: the same for the Flask + Pillow baseline.

Every request is a new variant (a fresh cache per server start) in the
original's format, as in the uncached load runs. ``--service-env`` starts
the service with more environment (``GLIBC_TUNABLES=`` opts out of its
allocator settings). Writes ``benchmarks/results/cores-<date>.json`` and
``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .. import competitors, corpus, proctree, urls, wrk
from ..run import (
    RESULTS_DIR,
    library_environment,
    library_python,
    measured_commit,
    quality_args,
    results_stamp,
)
from ..stats import Summary, format_summary, summarize
from .handshake import answer, ready_child, tell

PAIRINGS = (("service", "vips"), ("service", "service-path"), ("baseline", "pillow"))
# libcost's name for each loop.
_LOOP_LIBRARY = {"vips": "vips", "service-path": "service", "pillow": "pillow"}
_CONNECTIONS = 2
# More paths than a server answers in the run (~10 a second here), so that
# wrk, which goes round its list, never asks for one twice (a cache hit).
_PATHS_PER_SECOND = 40
_WARM_UP_WIDTH = 64
_READY_SECONDS = 180.0


@dataclass(frozen=True, slots=True)
class Pair:
    """One pairing measured once: the server on one core, the loop on the other."""

    server: str
    loop: str
    server_cpu: int  # the CPU each was pinned to
    loop_cpu: int
    requests: int
    server_rps: float
    server_cpu_ms: float  # the server's process tree, per request
    client_cpu_ms: float  # wrk's, on the server's CPU, per request
    renders: int  # counted: as many as the server answered, when the loop got that far
    loop_renders_in_all: int
    loop_rps: float
    loop_cpu_ms: float  # per render
    server_mean_width: float  # of the variants each side got through
    loop_mean_width: float

    @property
    def rate_ratio(self) -> float:
        return self.server_rps / self.loop_rps

    @property
    def cpu_ratio(self) -> float:
        """Above 1 when the server spends less CPU per image than the loop."""
        return self.loop_cpu_ms / self.server_cpu_ms


def parse_pairings(text: str) -> list[tuple[str, str]]:
    """'service:vips,baseline:pillow' -> the pairings, each one of PAIRINGS."""
    chosen = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        server, _, loop = item.partition(":")
        if (server, loop) not in PAIRINGS:
            known = ", ".join(f"{s}:{lp}" for s, lp in PAIRINGS)
            raise ValueError(f"unknown pairing {item!r}; known: {known}")
        chosen.append((server, loop))
    if not chosen:
        raise ValueError("no pairing chosen")
    return chosen


def two_cpus(allowed: set[int]) -> tuple[int, int]:
    """The two CPUs to pin to: the lowest two this process may run on."""
    if len(allowed) < 2:
        raise RuntimeError("benchmarks.lab.cores needs two CPUs: one per side")
    first, second = sorted(allowed)[:2]
    return first, second


def placements(cpus: tuple[int, int], rounds: int) -> Iterator[tuple[int, int]]:
    """(server CPU, loop CPU) of each pair: both ways round, every round, so
    that neither side keeps the CPU that its neighbours on the host slow."""
    first, second = cpus
    for _ in range(rounds):
        yield first, second
        yield second, first


def mean_width(pool: urls.VariantPool, start: int, count: int) -> float:
    """The mean width of ``count`` variants of ``pool`` from ``start``."""
    if count <= 0:
        return 0.0
    return statistics.fmean(pool.variant(start + index).width for index in range(count))


def summary(pairs: Sequence[Pair]) -> dict[str, dict[str, Any]]:
    """Per pairing: the median and range of both ratios over its pairs."""
    out: dict[str, dict[str, Any]] = {}
    for server, loop in dict.fromkeys((p.server, p.loop) for p in pairs):
        mine = [p for p in pairs if (p.server, p.loop) == (server, loop)]
        rate, cpu = summarize([p.rate_ratio for p in mine]), summarize([p.cpu_ratio for p in mine])
        out[f"{server}:{loop}"] = {
            "pairs": len(mine),
            "rate_ratio": {"median": rate.median, "low": rate.low, "high": rate.high},
            "cpu_ratio": {"median": cpu.median, "low": cpu.low, "high": cpu.high},
            "server_cpu_ms": statistics.median(p.server_cpu_ms for p in mine),
            "loop_cpu_ms": statistics.median(p.loop_cpu_ms for p in mine),
            "server_mean_width": statistics.fmean(p.server_mean_width for p in mine),
            "loop_mean_width": statistics.fmean(p.loop_mean_width for p in mine),
        }
    return out


def markdown(results: Mapping[str, Any]) -> str:
    """The results as a Markdown table, one row per pairing."""
    lines = [
        "| server : in-process loop | pairs | server req/s ÷ loop renders/s | "
        "loop CPU ÷ server CPU per image | CPU ms per image, server / loop | "
        "mean width, server / loop |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["summary"].items():
        rate, cpu = _formatted(row["rate_ratio"]), _formatted(row["cpu_ratio"])
        lines.append(
            f"| {name} | {row['pairs']} | {rate} | {cpu} | "
            f"{row['server_cpu_ms']:.1f} / {row['loop_cpu_ms']:.1f} | "
            f"{row['server_mean_width']:.0f} / {row['loop_mean_width']:.0f} px |"
        )
    environment = results.get("service_environment") or {}
    lines += [
        "",
        f"{results['seconds']:g} s a pair, both sides at once, each pinned to its own CPU, "
        f"then swapped; medians and (range). Commit {results['commit']}; "
        f"service environment {environment or 'as the service sets it'}.",
    ]
    return "\n".join(lines) + "\n"


def _formatted(values: Mapping[str, float]) -> str:
    """'0.97 (0.92-0.98)' from a pairing's median, low and high."""
    return format_summary(Summary(values["median"], values["low"], values["high"], 0), digits=2)


def start_server(
    server: str, originals: str, workdir: str, cpu: int, service_env: Mapping[str, str]
) -> competitors.Server:
    pin = ("taskset", "-c", str(cpu))
    if server == "service":
        return competitors.start_service(
            originals, workdir, workers=1, concurrency=1, total_concurrency=1,
            env=dict(service_env), wrapper=pin,
        )  # fmt: skip
    return competitors.start_baseline(originals, workdir, workers=1, wrapper=pin)


def loop_over_first(rendered: Mapping[str, Any], count: int) -> tuple[int, float, float]:
    """The loop's renders, wall and CPU seconds over its first ``count``
    renders (its ``marks``): the variants the server got through, from the
    same start. A loop that rendered fewer is taken whole."""
    marks = rendered["marks"]
    if count <= 0 or count > len(marks):
        return len(marks), float(rendered["seconds"]), float(rendered["cpu_seconds"])
    seconds, cpu_seconds = marks[count - 1]
    return count, float(seconds), float(cpu_seconds)


def measure_pair(
    server_name: str,
    loop: str,
    placement: tuple[int, int],
    *,
    originals: str,
    names: Sequence[str],
    offset: int,
    seconds: float,
    workdir: str,
    service_env: Mapping[str, str],
) -> Pair:
    """Run ``server_name`` under load and ``loop`` in process at the same time."""
    server_cpu, loop_cpu = placement
    os.makedirs(workdir)
    pool = urls.VariantPool(names)
    variants = [pool.variant(offset + i) for i in range(int(seconds * _PATHS_PER_SECOND))]
    paths_file = urls.paths_file(workdir, "load")
    urls.write_paths(paths_file, [urls.url_path(server_name, v) for v in variants])
    library = _LOOP_LIBRARY[loop]
    argv = [
        "taskset", "-c", str(loop_cpu),
        library_python(library), "-m", "benchmarks.libcost", "--library", library,
        "--images", ",".join(os.path.join(originals, n) for n in names),
        "--loop-seconds", str(seconds), "--offset", str(offset), "--start-on-stdin", "--marks",
        *quality_args(),
    ]  # fmt: skip
    loop_env = library_environment(library)
    if library == "service":  # the service's path runs as the service does
        loop_env.update(service_env)
    server = start_server(server_name, originals, workdir, server_cpu, service_env)
    try:
        server.wait_ready()
        for name in dict.fromkeys(names):  # load the server's codecs, uncounted
            status, _, _ = competitors.fetch(
                server.base_url + urls.url_path(server_name, urls.Variant(name, _WARM_UP_WIDTH))
            )
            if status != 200:
                raise RuntimeError(f"{server_name}: warm-up of {name} answered {status}")
        with ready_child(
            argv, cwd=competitors.ROOT, env=loop_env, side=loop, timeout=_READY_SECONDS
        ) as process:
            tree = proctree.tree(server.pid)
            cpu_before = proctree.cpu_seconds(tree)
            # The loop goes first: wrk's own start (its script, its
            # connections) takes a few ms of the 20 s more.
            tell(process, "go")
            load = wrk.run(
                server.base_url, paths_file, concurrency=_CONNECTIONS, seconds=seconds,
                threads=1, wrapper=("taskset", "-c", str(server_cpu)),
            )  # fmt: skip
            server_cpu_seconds = proctree.cpu_seconds(tree) - cpu_before
            if proctree.tree(server.pid) != tree:  # a replaced worker's CPU is lost
                raise RuntimeError(f"{server_name}'s processes changed during the load")
            rendered = json.loads(answer(process, seconds + _READY_SECONDS))
    finally:
        server.stop()
    if load.non_2xx or any(load.errors.values()):
        raise RuntimeError(f"{server_name}: {load.non_2xx} non-2xx answers, errors {load.errors}")
    if load.wraps or load.cache_hits:
        raise RuntimeError(f"{server_name}: wrk went round its {len(variants)} paths: hits")
    renders, loop_seconds, loop_cpu_seconds = loop_over_first(rendered, load.requests)
    return Pair(
        server=server_name,
        loop=loop,
        server_cpu=server_cpu,
        loop_cpu=loop_cpu,
        requests=load.requests,
        server_rps=load.rps,
        # Also the part of the render still running when wrk stopped: at
        # most one render in the ~150 counted, against the server.
        server_cpu_ms=1000 * server_cpu_seconds / load.requests,
        client_cpu_ms=1000 * load.client_cpu_seconds / load.requests,
        renders=renders,
        loop_renders_in_all=int(rendered["renders"]),
        loop_rps=renders / loop_seconds,
        loop_cpu_ms=1000 * loop_cpu_seconds / renders,
        server_mean_width=mean_width(pool, offset, load.requests),
        loop_mean_width=mean_width(pool, offset, renders),
    )


def parse_environment(items: Sequence[str]) -> dict[str, str]:
    """['NAME=VALUE', ...] -> {NAME: VALUE}; an empty value is kept."""
    environment = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"not NAME=VALUE: {item!r}")
        environment[name] = value
    return environment


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pairs",
        default=",".join(f"{s}:{lp}" for s, lp in PAIRINGS),
        help="server:loop pairings, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=3, help="each is two pairs, cores swapped")
    parser.add_argument("--seconds", type=float, default=20.0, help="of each pair")
    parser.add_argument("--service-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--corpus", default=os.path.join(competitors.ROOT, corpus.DEFAULT_DIR))
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        pairings = parse_pairings(args.pairs)
        service_env = parse_environment(args.service_env)
    except ValueError as error:
        parser.error(str(error))
    if args.rounds < 1 or args.seconds < 2:
        parser.error("--rounds must be at least 1 and --seconds at least 2")
    if shutil.which("taskset") is None:
        parser.error("taskset (util-linux) is needed to pin each side to its CPU")
    cpus = two_cpus(os.sched_getaffinity(0))
    wrk.ensure_installed()
    corpus.build(args.corpus)
    if any(server == "baseline" for server, _ in pairings):
        competitors.ensure_venv("baseline")
    originals = corpus.originals_dir(args.corpus)
    names = corpus.mix_names()
    scratch = tempfile.mkdtemp(prefix="image-factory-cores-")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    pairs: list[Pair] = []
    # Every pair starts further into the pool, so that no two pairs render
    # the same variants; within a pair both sides start at the same one.
    offset = 0
    stride = int(args.seconds * _PATHS_PER_SECOND)
    try:
        for index, placement in enumerate(placements(cpus, args.rounds)):
            for server, loop in pairings:
                pair = measure_pair(
                    server, loop, placement,
                    originals=originals, names=names, offset=offset, seconds=args.seconds,
                    workdir=os.path.join(scratch, f"{index}-{server}-{loop}"),
                    service_env=service_env,
                )  # fmt: skip
                offset += stride
                pairs.append(pair)
                print(
                    f"cores: {server} on CPU {placement[0]} {pair.server_rps:.2f} req/s "
                    f"({pair.server_cpu_ms:.1f} ms), {loop} on CPU {placement[1]} "
                    f"{pair.loop_rps:.2f}/s ({pair.loop_cpu_ms:.1f} ms): {pair.rate_ratio:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results: dict[str, object] = {
        "started": started,
        "commit": measured_commit(),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "cpus": list(cpus),
        "connections": _CONNECTIONS,
        "service_environment": service_env,
        "machine": competitors.describe_machine(),
        "pairs": [
            {**asdict(pair), "rate_ratio": pair.rate_ratio, "cpu_ratio": pair.cpu_ratio}
            for pair in pairs
        ],
        "summary": summary(pairs),
    }
    base = os.path.join(args.out, f"cores-{results_stamp()}")
    os.makedirs(args.out, exist_ok=True)
    with open(base + ".json", "w") as out:
        json.dump(results, out, indent=1)
    table = markdown(results)
    with open(base + ".md", "w") as out:
        out.write(table)
    print(table)
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
