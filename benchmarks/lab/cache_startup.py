"""How long a restart takes to open a cache holding N entries.

    python -m benchmarks.lab.cache_startup --entries 100000

Builds a cache directory with N small entries (the files, and the index rows
written in bulk, as many commits would leave them), then times
``DiskCache.open()`` several times: what a restarting worker pays before it
serves (stale-temp sweep, and the scan that reconciles files and index).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time

from service.cache import DiskCache


def build(directory: str, entries: int) -> None:
    cache = DiskCache(directory, 10**12)
    cache.open()
    cache.close()
    rows = []
    for index in range(entries):
        key = f"{index:064x}"
        shard = os.path.join(directory, "objects", key[:2])
        os.makedirs(shard, exist_ok=True)
        with open(os.path.join(shard, key), "wb") as handle:
            handle.write(b"\xff\xd8\xff\xe0" + b"x" * 60)
        rows.append((key, 64, "jpeg", float(index)))
    with sqlite3.connect(os.path.join(directory, "index.sqlite3")) as db:
        db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
        db.execute("UPDATE totals SET bytes = ?, entries = ? WHERE id = 0", (64 * entries, entries))
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cache-startup-") as directory:
        started = time.perf_counter()
        build(directory, args.entries)
        print(f"built {args.entries} entries in {time.perf_counter() - started:.1f} s")
        timings = []
        for _ in range(args.runs):
            cache = DiskCache(directory, 10**12)
            started = time.perf_counter()
            cache.open()
            timings.append(time.perf_counter() - started)
            assert cache.stats().entries == args.entries
            cache.close()
        print(
            f"open() with {args.entries} entries: median {statistics.median(timings):.3f} s, "
            f"min {min(timings):.3f} s, max {max(timings):.3f} s over {args.runs} runs"
        )


if __name__ == "__main__":
    main()
