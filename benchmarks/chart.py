"""The chart: throughput and peak RSS against concurrency, per competitor.

    python -m benchmarks.chart results/latest.json results/latest.png

Runs where matplotlib is installed (the benchmark's baseline venv).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .report import ORDER, summarize_all

COLOURS = {"service": "#1b7837", "baseline": "#762a83", "thumbor": "#e08214", "ipx": "#2166ac"}
TITLES = {
    "service": "Image Factory",
    "baseline": "Flask + Pillow (gunicorn)",
    "thumbor": "thumbor",
    "ipx": "ipx (Node + sharp)",
}


def _servers_of(results: dict[str, Any]) -> set[str]:
    """The competitors that ran (a quick run has no thumbor, nor ipx)."""
    return set(results.get("competitors", {})) or set(ORDER)


def draw(results: dict[str, Any], target: str) -> None:
    import matplotlib  # noqa: PLC0415 - optional, only where charts are drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    summary = results.get("summary") or summarize_all(results)
    uncached = summary.get("uncached", {})
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.6))
    concurrencies = sorted(uncached, key=int)
    for name in ORDER:
        xs, ys, lows, highs, mem = [], [], [], [], []
        for c in concurrencies:
            s = uncached[c].get(name)
            if not s:
                continue
            xs.append(int(c))
            ys.append(s["rps"]["median"])
            lows.append(s["rps"]["median"] - s["rps"]["min"])
            highs.append(s["rps"]["max"] - s["rps"]["median"])
            mem.append(s["peak_rss_mib"]["median"])
        if not xs:
            continue
        style = {"color": COLOURS[name], "marker": "o", "label": name, "capsize": 4}
        left.errorbar(xs, ys, yerr=[lows, highs], **style)
        middle.plot(xs, mem, color=COLOURS[name], marker="o", label=name)
    for axis, title, label in (
        (left, "Uncached, corpus mix → 600-1099 px", "requests/s (median, range of runs)"),
        (middle, "Peak RSS of the process tree, uncached", "MiB"),
    ):
        axis.set_title(title)
        axis.set_xlabel("concurrent connections")
        axis.set_ylabel(label)
        axis.set_xscale("log", base=2)
        axis.set_xticks([int(c) for c in concurrencies] or [1])
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    hits = summary.get("cache_hits", {})
    names = [n for n in ORDER if n in hits]
    if names:
        values = [hits[n]["rps"]["median"] for n in names]
        errors = [
            [hits[n]["rps"]["median"] - hits[n]["rps"]["min"] for n in names],
            [hits[n]["rps"]["max"] - hits[n]["rps"]["median"] for n in names],
        ]
        right.bar(names, values, yerr=errors, color=[COLOURS[n] for n in names], capsize=4)
        # ipx has no result cache: its bar is of renders (report.IPX_HITS).
        renders = " (ipx: renders)" if "ipx" in names else ""
        right.set_title(f"Cache hits, 16 connections{renders}")
        right.set_ylabel("requests/s")
        right.grid(axis="y", alpha=0.3)
    else:
        right.axis("off")
    machine = results.get("machine", {})
    competitors = " vs ".join(TITLES[name] for name in ORDER if name in _servers_of(results))
    figure.suptitle(
        f"{competitors} — {machine.get('cpus', '?')} cores, {results.get('started', '')}"
    )
    figure.tight_layout()
    figure.savefig(target, dpi=100)


def has_load(results: dict[str, Any]) -> bool:
    """Whether the run has what the chart draws (a run of scenario 1 or 9
    alone has not)."""
    summary = results.get("summary") or summarize_all(results)
    return bool(summary.get("uncached") or summary.get("cache_hits"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results")
    parser.add_argument("png")
    args = parser.parse_args()
    with open(args.results) as handle:
        results = json.load(handle)
    if not has_load(results):
        print("chart: no uncached or cache-hit case in the run, no chart", file=sys.stderr)
        return 1
    draw(results, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
