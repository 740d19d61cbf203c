"""What ``image-factory loadtest`` prints and draws from a run's summary.

``format_summary`` takes the dict ``LoadStats.summary`` returns (the one
``--json`` prints) and lays it out as a table by status, then the overall
figures. ``write_chart`` draws latency over time and its histogram with
matplotlib, an optional extra (``pip install 'image-factory[chart]'``)
imported only here, only when asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .loadtest import nearest_rank

if TYPE_CHECKING:
    from .loadtest import LoadStats

# At or above this share of one core, the client's one event loop was busy
# all the time: what limited the rate may have been the client.
CLIENT_BOUND_PERCENT = 85.0


def as_json(result: Mapping[str, Any]) -> str:
    return json.dumps(result, indent=1)


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as the service's size flags)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    # Cache hits take a fraction of a millisecond: keep two figures there.
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def status_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The by-status rows as aligned columns."""
    header = ("status", "count", "share", "p50 ms", "p90 ms", "p99 ms", "max ms")
    cells: list[tuple[str, ...]] = [header]
    for row in rows:
        latency = row["latency_ms"]
        cells.append(
            (
                str(row["status"]),
                str(row["count"]),
                f"{100 * row['share']:.1f} %",
                *(_ms(latency[key]) for key in ("p50", "p90", "p99", "max")),
            )
        )
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    lines = []
    for line in cells:
        # The first column (a status or an error's name) left, figures right.
        first = line[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True))
        lines.append("  ".join((first, *rest)))
    return "\n".join(lines)


def format_summary(result: Mapping[str, Any]) -> str:
    """The summary as a user reads it at a terminal."""
    lat = result["latency_ms"]
    errors = ", ".join(f"{kind}: {count}" for kind, count in result["errors"].items() if count)
    ratio = result.get("cache_hit_ratio")
    cache = result.get("cache") or {}
    if ratio is None:
        cache_line = "n/a (no X-Cache header)"
    else:
        counts = ", ".join(f"{value} {count}" for value, count in cache.items())
        cache_line = f"{100 * ratio:.1f} % ({counts})"
    seconds = result["seconds"]
    received = result.get("bytes_received", 0)
    rate = f" ({human_bytes(received / seconds)}/s)" if seconds > 0 else ""
    cpu = result["client_cpu_percent"]
    cpu_line = f"{cpu} % of one core"
    if cpu >= CLIENT_BOUND_PERCENT:
        cpu_line += " - the client may have been the limit: run several at once and add up"
    lines = []
    if result.get("by_status"):
        lines += [status_table(result["by_status"]), ""]
    lines += [
        f"requests      {result['requests']} answers in {seconds:.1f} s"
        f" = {result['rps']:.1f} req/s",
        f"latency (ms)  p50 {_ms(lat['p50'])}  p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}"
        f"  max {_ms(lat['max'])}",
        f"errors        {errors or 'none'}",
        f"cache hits    {cache_line}",
        f"received      {human_bytes(received)} of bodies{rate}",
        f"client CPU    {cpu_line}",
    ]
    if result.get("interrupted"):
        lines.append("(interrupted before the end: figures for the time it ran)")
    return "\n".join(lines)


def slice_width(seconds: float, slices: int = 60) -> float:
    """Seconds per slice of a run's chart: about ``slices`` of them, at least 0.25 s."""
    return max(seconds / slices, 0.25)


def time_bins(
    finished_s: Sequence[float], latencies_ms: Sequence[float], width: float
) -> list[tuple[float, int, float, float, float]]:
    """Per ``width`` seconds of the run: (start s, answers, p50, p99, max ms);
    slices with no answers left out. Percentiles per slice, not a dot per
    request: a million dots draw slowly and show only the outliers."""
    slices: dict[int, list[float]] = {}
    for at, latency in zip(finished_s, latencies_ms, strict=True):
        slices.setdefault(int(at // width), []).append(latency)
    rows = []
    for index in sorted(slices):
        ordered = sorted(slices[index])
        rows.append(
            (
                index * width,
                len(ordered),
                nearest_rank(ordered, 0.50),
                nearest_rank(ordered, 0.99),
                ordered[-1],
            )
        )
    return rows


def write_chart(path: str, stats: LoadStats, *, title: str) -> None:
    """Latency over time (p50, p99, max per slice, and req/s) above a
    histogram of all answers' latencies, to ``path`` (format from its suffix)."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - the optional extra
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    # Log axes label 2, 5, 20 ms, not 2x10^0.
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    width = slice_width(max(stats.finished_s, default=0.0))
    rows = time_bins(stats.finished_s, stats.latencies_ms, width)
    # A Figure of its own, not pyplot: no global state, no GUI backend.
    figure = Figure(figsize=(9, 7), layout="constrained")
    over_time, histogram = figure.subplots(2, 1)
    figure.suptitle(f"image-factory loadtest: {title}")
    if rows:
        starts = [row[0] for row in rows]
        rate = over_time.twinx()
        rate.bar(
            starts,
            [row[1] / width for row in rows],
            width=width,
            align="edge",
            alpha=0.15,
            color="grey",
        )
        rate.set_ylabel("req/s (bars)")
        # The latency lines over the bars, though the bars' axes came second.
        over_time.set_zorder(rate.get_zorder() + 1)
        over_time.patch.set_visible(False)
        middles = [start + width / 2 for start in starts]
        for column, label in ((4, "max"), (3, "p99"), (2, "p50")):
            over_time.plot(middles, [row[column] for row in rows], label=label)
        over_time.set_yscale("log")
        over_time.yaxis.set_major_formatter(plain)
        over_time.yaxis.set_minor_formatter(plain)
        over_time.legend(loc="upper left")
    over_time.set_xlabel("seconds since the start")
    over_time.set_ylabel("latency, ms")
    if stats.latencies_ms:
        # Log-spaced bins need a low edge above 0 and a high one above it.
        longest = max(stats.latencies_ms)
        low = max(min(stats.latencies_ms), 0.01)
        high = max(longest, low * 1.01)
        edges = [low * (high / low) ** (step / 50) for step in range(51)]
        histogram.hist(list(stats.latencies_ms), bins=edges)
        histogram.set_xscale("log")
        histogram.xaxis.set_major_formatter(plain)
    histogram.set_xlabel("latency, ms")
    histogram.set_ylabel("answers")
    figure.savefig(path)
