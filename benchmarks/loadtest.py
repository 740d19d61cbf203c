"""Load-test any running image service with your own URLs.

    python -m benchmarks.loadtest http://127.0.0.1:8080 --paths urls.txt \\
        --concurrency 8 --duration 30

``--paths`` is a file of request paths (``/picture/a.jpg?w=800``) or full
URLs, one a line; they are requested in order, round-robin, by
``--concurrency`` connections for ``--duration`` seconds (and, with the
python engine, at most ``--max-requests``). The progress bar shows on a
terminal. The summary gives requests/s, latency percentiles,
answers by status, the cache hit ratio from ``X-Cache`` and the client's own
CPU use, so you can tell whether the client was the bottleneck.

``--engine wrk`` (the default when ``wrk`` is installed) drives the load
with wrk and its Lua script, as the benchmark does; ``--engine python`` uses
an aiohttp client, which needs nothing else but tops out at a few thousand
requests/s on one core. Point it only at deployments you run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import urls, wrk
from .stats import percentile


@dataclass(slots=True)
class LoadStats:
    """What a load run saw: one entry per finished request."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, status: int, latency_ms: float, x_cache: str | None) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[str(status)] += 1
        if x_cache:
            self.cache[x_cache.strip().upper()] += 1

    def fail(self, kind: str) -> None:
        self.errors[kind] += 1

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def summary(self, seconds: float, client_cpu_seconds: float = 0.0) -> dict[str, Any]:
        lat = self.latencies_ms
        hits, misses = self.cache.get("HIT", 0), self.cache.get("MISS", 0)
        return {
            "requests": self.requests,
            "seconds": round(seconds, 3),
            "rps": round(self.requests / seconds, 2) if seconds > 0 else 0.0,
            "latency_ms": {
                "p50": round(percentile(lat, 0.50), 2) if lat else None,
                "p90": round(percentile(lat, 0.90), 2) if lat else None,
                "p99": round(percentile(lat, 0.99), 2) if lat else None,
                "max": round(max(lat), 2) if lat else None,
            },
            "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(self.errors),
            "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "client_cpu_percent": round(100 * client_cpu_seconds / seconds, 1) if seconds else 0,
        }


def progress_line(
    elapsed: float, duration: float, requests: int, errors: int, width: int = 30
) -> str:
    """'[#########.....................]  9.0/30 s   1234 req  137.1 req/s  0 errors'"""
    done = min(1.0, elapsed / duration) if duration > 0 else 1.0
    filled = round(done * width)
    rate = requests / elapsed if elapsed > 0 else 0.0
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {elapsed:5.1f}/{duration:g} s "
        f"{requests:7d} req {rate:8.1f} req/s {errors} errors"
    )


def format_summary(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    statuses = ", ".join(f"{code}: {count}" for code, count in result["statuses"].items())
    errors = ", ".join(f"{kind}: {count}" for kind, count in result["errors"].items() if count)
    ratio = result.get("cache_hit_ratio")
    lines = [
        f"requests      {result['requests']} in {result['seconds']:.1f} s"
        f" = {result['rps']:.1f} req/s",
        f"latency (ms)  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}",
        f"statuses      {statuses or 'none'}",
        f"errors        {errors or 'none'}",
        f"cache hits    {'n/a (no X-Cache header)' if ratio is None else f'{100 * ratio:.1f} %'}",
        f"client CPU    {result['client_cpu_percent']} % of one core",
    ]
    return "\n".join(lines)


def base_url(target: str) -> str:
    """'host:port', 'http://host:port/anything' -> 'http://host:port'."""
    if "://" not in target:
        target = "http://" + target
    scheme, rest = target.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_python(
    base: str,
    paths: list[str],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    timeout: float,
    out: TextIO | None,
) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415 - the wrk engine does not need it

    stats = LoadStats()
    counter = iter(range(max_requests))
    started = time.monotonic()
    deadline = started + duration
    cpu_before = _cpu()
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(base, timeout=client_timeout, connector=connector) as session:

        async def worker() -> None:
            for index in counter:
                if time.monotonic() >= deadline:
                    return
                path = paths[index % len(paths)]
                sent = time.monotonic()
                try:
                    async with session.get(path, allow_redirects=False) as reply:
                        await reply.read()
                        elapsed = (time.monotonic() - sent) * 1000
                        stats.record(reply.status, elapsed, reply.headers.get("X-Cache"))
                except TimeoutError:
                    stats.fail("timeout")
                except aiohttp.ClientError as error:
                    stats.fail(type(error).__name__)

        async def report() -> None:
            while out is not None:
                await asyncio.sleep(0.5)
                line = progress_line(
                    time.monotonic() - started, duration, stats.requests, sum(stats.errors.values())
                )
                out.write("\r" + line)
                out.flush()

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        reporter.cancel()
    seconds = time.monotonic() - started
    if out is not None:
        out.write("\n")
    return stats.summary(seconds, _cpu() - cpu_before)


def run_wrk(
    base: str, paths: list[str], *, concurrency: int, duration: float, out: TextIO | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        paths_file = os.path.join(scratch, "paths")
        urls.write_paths(paths_file, paths)
        holder: dict[str, wrk.WrkResult] = {}
        failure: list[BaseException] = []

        def target() -> None:
            try:
                holder["result"] = wrk.run(
                    base, paths_file, concurrency=concurrency, seconds=duration
                )
            except BaseException as error:  # re-raised in the calling thread
                failure.append(error)

        thread = threading.Thread(target=target)
        started = time.monotonic()
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
            if out is not None:
                out.write("\r" + progress_line(time.monotonic() - started, duration, 0, 0))
                out.flush()
        if out is not None:
            out.write("\n")
        if failure:
            raise failure[0]
    result = holder["result"]
    hits, misses = result.cache_hits, result.cache_misses
    return {
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "rps": round(result.rps, 2),
        "latency_ms": {
            key: round(result.latency_ms[key], 2) for key in ("p50", "p90", "p99", "max")
        },
        "statuses": dict(sorted(result.statuses.items())),
        "errors": {k: v for k, v in result.errors.items() if k != "status"},
        "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "client_cpu_percent": round(result.client_cpu_percent, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="the service's base URL (or host:port)")
    parser.add_argument("--paths", required=True, help="file of request paths or URLs")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0:
        parser.error("--concurrency must be >= 1 and --duration > 0")
    paths = urls.read_paths(args.paths)
    base = base_url(args.url)
    engine = args.engine
    if engine == "auto":
        engine = "wrk" if wrk.available() else "python"
    progress = sys.stderr if sys.stderr.isatty() else None
    print(
        f"{engine}: {base}, {len(paths)} paths, {args.concurrency} connections, "
        f"{args.duration:g} s",
        file=sys.stderr,
    )
    if engine == "wrk":
        result = run_wrk(
            base, paths, concurrency=args.concurrency, duration=args.duration, out=progress
        )
    else:
        result = asyncio.run(
            run_python(
                base,
                paths,
                concurrency=args.concurrency,
                duration=args.duration,
                max_requests=args.max_requests,
                timeout=args.timeout,
                out=progress,
            )
        )
    print(json.dumps(result, indent=1) if args.json else format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
