"""The cache's index stays small beside its bound: SQLite's WAL, which by
default grows to about 4 MB and never shrinks, is checkpointed often and cut
back after each checkpoint (issue 22's directory bound, the index's part)."""

from __future__ import annotations

import os
from pathlib import Path

from service.cache import DiskCache

from .test_cache import put

# What the WAL may hold at once: the size it is cut back to, plus the
# pages of one commit written since the last checkpoint (a few pages).
WAL_ALLOWANCE = 256 * 1024 + 64 * 1024


def test_the_wal_stays_small_over_many_commits(tmp_path: Path) -> None:
    """1,500 commits, each with its evictions and recency notes: the WAL
    of SQLite's defaults reached megabytes over such a fill."""
    cache = DiskCache(str(tmp_path / "cache"), 200_000)
    cache.open()
    try:
        largest_wal = 0
        for number in range(1500):
            put(cache, f"{number:064x}", 1000)
            if number % 50 == 0:
                cache.flush()
            wal = tmp_path / "cache" / "index.sqlite3-wal"
            largest_wal = max(largest_wal, os.stat(wal).st_size if wal.exists() else 0)
        assert cache.stats().bytes <= 200_000
    finally:
        cache.close()
    assert 0 < largest_wal <= WAL_ALLOWANCE
