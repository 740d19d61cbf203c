"""``image-factory loadtest``: load-test your own deployment with your own URLs.

    image-factory loadtest http://127.0.0.1:8080 --paths urls.txt \\
        --concurrency 8 --duration 30 [--json] [--chart latency.png]

``--paths`` is a file (``-``: standard input) of request paths such as
``/picture/a.jpg?w=800``, or full URLs, one a line; blank lines and ``#``
comments are skipped (the format the benchmarks' ``urls.write_paths`` writes).
``--concurrency`` connections, each one request at a time, ask for them in
order, round-robin, for ``--duration`` seconds or until ``--max-requests``
were sent; requests still in flight then are waited for (at most
``--timeout``), so every request the target answered is counted.

Before the clock starts, the first path is requested once: a target that
cannot be reached (connection refused, a name that does not resolve) is one
line on stderr and exit status 1, not a screen of errors per request. That
request is not part of the results.

Progress goes to stderr: a line redrawn twice a second on a terminal, a
plain line every few seconds otherwise (``docker run`` logs, CI), chosen by
``--progress``. The summary, a table by status then the overall figures
(``format_summary`` in loadtest_report.py), goes to stdout; ``--json``
prints the same as JSON. The client's own CPU use is in it: near 100 % of
one core, the client (one event loop) and not the target was the limit.

The engine is an aiohttp client in one process: nothing else to install, so
it runs from the container image too. The benchmarks (benchmarks/) drive
their load with wrk instead, which goes further on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import resource
import signal
import socket
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp
from yarl import URL

PROG = "image-factory loadtest"

DESCRIPTION = """\
Send requests to an image service and report req/s, latency percentiles by
status, the cache hit ratio (X-Cache) and the client's own CPU use.

Point it only at deployments you run or are allowed to load: it sends as many
requests as the target answers.

PATHS is a file (or - for stdin) of request paths (/picture/a.jpg?w=800) or
full URLs, one a line; blank lines and # comments are skipped. The first path
is requested once before the load starts, to check the target answers."""

EPILOG = """\
--chart needs matplotlib: pip install 'image-factory[chart]'. The container
image leaves it out (there, use --json and chart elsewhere).

example:
  image-factory loadtest http://127.0.0.1:8080 --paths urls.txt -c 8 -d 30
  docker run --rm -i --network host image-factory loadtest \\
      http://127.0.0.1:8080 --paths - < urls.txt"""

CHART_HINT = "--chart needs matplotlib: pip install 'image-factory[chart]'"

PROGRESS_MODES = ("auto", "tty", "plain", "none")
# A terminal redraws one line in place, so it can afford to be live; a log
# (docker logs, CI) keeps every line, so it gets one every few seconds.
TTY_INTERVAL = 0.5
PLAIN_INTERVAL = 5.0


class Unreachable(Exception):
    """The target did not answer the check request: the one-line reason."""


class UsageError(Exception):
    """A bad paths file or option value found after parsing (exit status 2)."""


# -- what a run saw -------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in [0, 1]) of the values, as
    benchmarks/stats.py computes it, so the two report the same figures."""
    if not values:
        raise ValueError("no values")
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    return nearest_rank(sorted(values), fraction)


def nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """``percentile`` of values already sorted."""
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max in milliseconds (None without values), sorting once."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)
    figures = {f"p{round(q * 100)}": nearest_rank(ordered, q) for q in (0.50, 0.90, 0.99)}
    figures["max"] = ordered[-1]
    return {key: round(value, 2) for key, value in figures.items()}


class LiveHistogram:
    """Latencies counted in buckets a sixteenth of a doubling wide, for the
    live p99: exact percentiles sort every latency so far, which at a
    refresh twice a second would stall the event loop of a long run. Its
    p99 is within 4.5 % above the exact one."""

    STEPS_PER_DOUBLING = 16

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0

    def add(self, latency_ms: float) -> None:
        # Below a microsecond everything is one bucket: log2 needs > 0.
        bucket = math.ceil(math.log2(max(latency_ms, 0.001)) * self.STEPS_PER_DOUBLING)
        self.counts[bucket] += 1
        self.total += 1

    def quantile(self, fraction: float) -> float | None:
        """The upper edge of the bucket holding the nearest-rank value."""
        if not self.total:
            return None
        rank = max(1, math.ceil(fraction * self.total))
        seen = 0
        for bucket in sorted(self.counts):  # a few hundred buckets at most
            seen += self.counts[bucket]
            if seen >= rank:
                return float(2 ** (bucket / self.STEPS_PER_DOUBLING))
        raise AssertionError("unreachable: the counts add up to total")


@dataclass(slots=True)
class LoadStats:
    """What a load run saw: one entry per answer or failed request."""

    # Aligned, one per answer: latency, and when it finished (seconds since
    # the start) for the chart. Arrays: 16 bytes an answer, not ~100 as floats
    # in lists, for runs of millions of requests.
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    finished_s: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[str] = field(default_factory=Counter)
    status_latencies: dict[str, array[float]] = field(default_factory=dict)
    cache: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_latencies: dict[str, array[float]] = field(default_factory=dict)
    bytes_received: int = 0
    live: LiveHistogram = field(default_factory=LiveHistogram)

    def record(
        self,
        status: int,
        latency_ms: float,
        x_cache: str | None,
        received: int = 0,
        finished_s: float = 0.0,
    ) -> None:
        """An answer: its status, latency, X-Cache header and body bytes."""
        code = str(status)
        self.latencies_ms.append(latency_ms)
        self.finished_s.append(finished_s)
        self.statuses[code] += 1
        self.status_latencies.setdefault(code, array("d")).append(latency_ms)
        if x_cache:
            self.cache[x_cache.strip().upper()] += 1
        self.bytes_received += received
        self.live.add(latency_ms)

    def fail(self, kind: str, latency_ms: float | None = None) -> None:
        """A request with no answer: a timeout, a refused or dropped connection."""
        self.errors[kind] += 1
        if latency_ms is not None:
            self.error_latencies.setdefault(kind, array("d")).append(latency_ms)

    @property
    def requests(self) -> int:
        """Answers received, whatever their status (errors are not answers)."""
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def by_status(self) -> list[dict[str, Any]]:
        """One row per status, then per kind of error: count, share of all
        requests sent, latency percentiles."""
        total = self.requests + self.error_count
        rows = []
        for code in sorted(self.statuses, key=lambda code: (len(code), code)):
            rows.append((code, self.statuses[code], self.status_latencies.get(code)))
        for kind, count in self.errors.most_common():
            rows.append((kind, count, self.error_latencies.get(kind)))
        return [
            {
                "status": name,
                "count": count,
                "share": round(count / total, 4),
                "latency_ms": latency_summary(latencies or ()),
            }
            for name, count, latencies in rows
        ]

    def summary(self, seconds: float, client_cpu_seconds: float = 0.0) -> dict[str, Any]:
        """The figures the table and --json show (JSON-ready)."""
        hits, misses = self.cache.get("HIT", 0), self.cache.get("MISS", 0)
        return {
            "requests": self.requests,
            "seconds": round(seconds, 3),
            "rps": round(self.requests / seconds, 2) if seconds > 0 else 0.0,
            "latency_ms": latency_summary(self.latencies_ms),
            "statuses": dict(sorted(self.statuses.items())),
            "by_status": self.by_status(),
            "errors": dict(self.errors),
            "cache": dict(sorted(self.cache.items())),
            "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "bytes_received": self.bytes_received,
            "client_cpu_percent": round(100 * client_cpu_seconds / seconds, 1) if seconds else 0,
        }


# -- progress -------------------------------------------------------------------


def resolve_progress(mode: str, stream: TextIO) -> str:
    """'auto' made concrete: 'tty' when ``stream`` is a terminal, else 'plain'."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"unknown progress mode {mode!r}")
    if mode != "auto":
        return mode
    return "tty" if stream.isatty() else "plain"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def progress_line(
    elapsed: float,
    duration: float,
    requests: int,
    errors: int,
    p99_ms: float | None = None,
    *,
    width: int = 30,
    done: float | None = None,
) -> str:
    """'[#####.....]   5.0/10 s     100 req     20.0 req/s  2 errors  p99 12.3 ms'

    ``done`` (0-1) fills the bar when the run ends on --max-requests first.
    """
    if done is None:
        done = elapsed / duration if duration > 0 else 1.0
    filled = round(min(1.0, done) * width)
    rate = requests / elapsed if elapsed > 0 else 0.0
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {elapsed:5.1f}/{duration:g} s "
        f"{requests:7d} req {rate:8.1f} req/s  {errors} errors  p99 {_ms(p99_ms)} ms"
    )


def plain_line(
    elapsed: float, duration: float, requests: int, errors: int, p99_ms: float | None = None
) -> str:
    """One line of a log: '5/10 s: 100 requests, 20.0 req/s, 2 errors, p99 12.3 ms'."""
    rate = requests / elapsed if elapsed > 0 else 0.0
    return (
        f"{PROG}: {elapsed:.0f}/{duration:g} s: {requests} requests, {rate:.1f} req/s, "
        f"{errors} errors, p99 {_ms(p99_ms)} ms"
    )


class Progress:
    """Writes progress lines to ``stream`` in one of the concrete modes."""

    def __init__(
        self, mode: str, stream: TextIO, duration: float, max_requests: int | None = None
    ) -> None:
        if mode not in ("tty", "plain", "none"):
            raise ValueError(f"not a concrete progress mode: {mode!r}")
        self.mode = mode
        self.stream = stream
        self.duration = duration
        self.max_requests = max_requests
        self._live = False  # a tty line is on screen, unterminated

    @property
    def interval(self) -> float:
        return TTY_INTERVAL if self.mode == "tty" else PLAIN_INTERVAL

    def line(self, elapsed: float, stats: LoadStats) -> str:
        sent = stats.requests + stats.error_count
        p99 = stats.live.quantile(0.99)
        if self.mode == "plain":
            return plain_line(elapsed, self.duration, stats.requests, stats.error_count, p99)
        done = elapsed / self.duration
        if self.max_requests:
            done = max(done, sent / self.max_requests)
        return progress_line(
            elapsed, self.duration, stats.requests, stats.error_count, p99, done=done
        )

    def show(self, elapsed: float, stats: LoadStats) -> None:
        if self.mode == "none":
            return
        if self.mode == "tty":
            # Back to the line's start and clear to its end: redrawn in place.
            self.stream.write("\r" + self.line(elapsed, stats) + "\x1b[K")
            self._live = True
        else:
            self.stream.write(self.line(elapsed, stats) + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (the start, a Ctrl-C), below a live line if any."""
        if self.mode == "none":
            return
        prefix = "\n" if self._live else ""
        self._live = False
        self.stream.write(f"{prefix}{PROG}: {text}\n")
        self.stream.flush()

    def finish(self, elapsed: float, stats: LoadStats) -> None:
        """The live line's last state, left on screen; logs get the summary."""
        if self.mode == "tty":
            self.show(elapsed, stats)
            self.stream.write("\n")
            self.stream.flush()
            self._live = False

    async def run(self, stats: LoadStats, started: float) -> None:
        """Refresh until cancelled."""
        if self.mode == "none":
            return
        while True:
            await asyncio.sleep(self.interval)
            self.show(time.perf_counter() - started, stats)


# -- inputs ---------------------------------------------------------------------


def parse_paths(lines: Iterable[str], name: str = "paths") -> list[str]:
    """Request paths: one a line; blank lines and # comments skipped; full
    URLs reduced to their path and query."""
    paths = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "://" in line:
            rest = line.split("://", 1)[1]
            line = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        if not line.startswith("/"):
            line = "/" + line
        paths.append(line)
    if not paths:
        raise UsageError(f"{name}: no request paths")
    return paths


def read_paths(path: str, stdin: TextIO | None = None) -> list[str]:
    """The paths in file ``path``, or in ``stdin`` for '-'."""
    if path == "-":
        return parse_paths(stdin if stdin is not None else sys.stdin, "standard input")
    try:
        with open(path) as source:
            return parse_paths(source, path)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a text file"
        raise UsageError(f"cannot read paths file {path}: {reason or error}") from error


def base_url(target: str) -> str:
    """'host:port', 'http://host:port/anything' -> 'http://host:port'."""
    if "://" not in target:
        target = "http://" + target
    scheme, rest = target.split("://", 1)
    host = rest.split("/", 1)[0]
    if scheme.lower() not in ("http", "https") or not host:
        raise UsageError(f"not an http(s) URL: {target!r}")
    return f"{scheme.lower()}://{host}"


# -- the engine -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """The check request's answer."""

    status: int
    latency_ms: float


@dataclass(slots=True)
class LoadRun:
    stats: LoadStats
    seconds: float
    client_cpu_seconds: float
    probe: Probe
    interrupted: bool = False


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def unreachable_reason(error: BaseException) -> str:
    """A connection error as a short human reason."""
    if isinstance(error, aiohttp.ClientConnectorError):
        cause: OSError = error.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is anything listening there?)"
        if isinstance(cause, socket.gaierror) or isinstance(error, aiohttp.ClientConnectorDNSError):
            return f"cannot resolve {error.host} ({cause.strerror or cause})"
        return cause.strerror or str(cause) or type(cause).__name__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@contextlib.contextmanager
def _stop_on_interrupt(stop: asyncio.Event, progress: Progress) -> Iterator[None]:
    """The first Ctrl-C stops sending and keeps what was measured; the
    default handler is back for a second one (loadtest_command catches it)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers are for the main thread only (a caller may run us in another)
        return
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)
        progress.note("interrupted: waiting for requests in flight (Ctrl-C again to quit)")

    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run_load(
    base: str,
    paths: Sequence[str],
    *,
    concurrency: int,
    duration: float,
    max_requests: int | None,
    timeout: float,  # noqa: ASYNC109 - per request (aiohttp ClientTimeout), not for this run
    progress: Progress,
) -> LoadRun:
    """Check the target answers, then load it; raises Unreachable."""
    # encoded=True: the paths are sent as written (a signature's s= or %2F
    # stays byte for byte what the user's file says).
    targets = [URL(base + path, encoded=True) for path in paths]
    connector = aiohttp.TCPConnector(limit=concurrency)
    # auto_decompress off: count the bytes the wire carried, and spend no
    # client CPU inflating them.
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    ) as session:
        asked = time.perf_counter()
        try:
            async with session.get(targets[0], allow_redirects=False) as reply:
                await reply.read()
                probe = Probe(reply.status, (time.perf_counter() - asked) * 1000)
        except TimeoutError as error:
            raise Unreachable(
                f"{base} did not answer {paths[0]} within --timeout {timeout:g} s"
            ) from error
        except aiohttp.ClientError as error:
            raise Unreachable(f"cannot reach {base}: {unreachable_reason(error)}") from error
        progress.note(
            f"{base} answered {paths[0]} with {probe.status} in {probe.latency_ms:.1f} ms; "
            f"loading it with {concurrency} connections for {duration:g} s"
            + (f" or {max_requests} requests" if max_requests else "")
        )

        stats = LoadStats()
        stop = asyncio.Event()
        numbers: Iterator[int] = iter(range(max_requests)) if max_requests else itertools.count()
        started = time.perf_counter()
        deadline = started + duration
        cpu_before = _cpu()

        async def worker() -> None:
            # One shared iterator: the workers take the paths in order between them.
            for index in numbers:
                if stop.is_set() or time.perf_counter() >= deadline:
                    return
                target = targets[index % len(targets)]
                sent = time.perf_counter()
                try:
                    async with session.get(target, allow_redirects=False) as reply:
                        received = 0
                        async for chunk in reply.content.iter_any():
                            received += len(chunk)
                        done = time.perf_counter()
                        stats.record(
                            reply.status,
                            (done - sent) * 1000,
                            reply.headers.get("X-Cache"),
                            received,
                            done - started,
                        )
                except TimeoutError:
                    stats.fail("timeout", (time.perf_counter() - sent) * 1000)
                except aiohttp.ClientError as error:
                    stats.fail(type(error).__name__, (time.perf_counter() - sent) * 1000)

        reporter = asyncio.create_task(progress.run(stats, started))
        try:
            with _stop_on_interrupt(stop, progress):
                await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        seconds = time.perf_counter() - started
        cpu_seconds = _cpu() - cpu_before
    progress.finish(seconds, stats)
    return LoadRun(stats, seconds, cpu_seconds, probe, interrupted=stop.is_set())


# -- the command ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("url", help="the service's base URL (http://host:port, or host:port)")
    parser.add_argument(
        "--paths", required=True, metavar="PATHS", help="file of request paths or URLs; - for stdin"
    )
    parser.add_argument(
        "-c", "--concurrency", type=int, default=4, metavar="N", help="connections (default 4)"
    )
    parser.add_argument(
        "-d",
        "--duration",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds of load (default 10)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        metavar="N",
        help="stop after this many (default: no limit)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds per request (default 60)",
    )
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="on stderr: tty (a live line), plain (a line every "
        f"{PLAIN_INTERVAL:g} s), none; auto (default): tty on a terminal, else plain",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--chart",
        metavar="FILE.png",
        help="also draw latency over time and its histogram (needs matplotlib, not in the image)",
    )
    return parser


def _check_chart_possible(path: str) -> None:
    """Before the load, not after it: a missing matplotlib would otherwise
    be found out once the whole run's time was spent."""
    try:
        import matplotlib  # noqa: F401, PLC0415 - an optional extra
    except ImportError as error:
        raise UsageError(CHART_HINT) from error
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--chart: no directory {directory}")


def loadtest_command(arguments: Sequence[str]) -> int:
    """``image-factory loadtest ...``: the exit status (0, 1 unreachable, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(list(arguments))
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if not args.duration > 0 or not args.timeout > 0:
        parser.error("--duration and --timeout must be more than 0")
    if args.max_requests is not None and args.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    try:
        base = base_url(args.url)
        if args.chart:
            _check_chart_possible(args.chart)
        paths = read_paths(args.paths)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2

    progress = Progress(
        resolve_progress(args.progress, sys.stderr), sys.stderr, args.duration, args.max_requests
    )
    try:
        run = asyncio.run(
            run_load(
                base,
                paths,
                concurrency=args.concurrency,
                duration=args.duration,
                max_requests=args.max_requests,
                timeout=args.timeout,
                progress=progress,
            )
        )
    except Unreachable as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130

    from . import loadtest_report as report  # noqa: PLC0415 - only once there is a result

    result = {
        "target": base,
        "paths": len(paths),
        "concurrency": args.concurrency,
        "probe_status": run.probe.status,
        "interrupted": run.interrupted,
        **run.stats.summary(run.seconds, run.client_cpu_seconds),
    }
    print(report.as_json(result) if args.json else report.format_summary(result))
    if args.chart:
        try:
            report.write_chart(args.chart, run.stats, title=f"{base}, c={args.concurrency}")
        except OSError as error:
            print(f"{PROG}: cannot write {args.chart}: {error.strerror or error}", file=sys.stderr)
            return 1
        print(f"{PROG}: chart written to {args.chart}", file=sys.stderr)
    return 0


def main() -> None:
    """``python -m service.loadtest``: the same as ``image-factory loadtest``."""
    sys.exit(loadtest_command(sys.argv[1:]))


if __name__ == "__main__":
    main()
