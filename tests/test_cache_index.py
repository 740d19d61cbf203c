"""The cache's index stays small and within the bound (issue 22's directory
bound, the index's part): SQLite's WAL, which by default grows to about 4 MB
and never shrinks, is checkpointed often and cut back after each checkpoint,
and the index's files are counted against the bound with the entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cache import CacheStats, CacheUnavailable, DiskCache

from .cache_room import bound_for, directory_bytes, index_share
from .test_cache import put

# What the WAL may hold at once: the size it is cut back to, plus the
# pages of one commit written since the last checkpoint (a few pages). The
# cache counts the WAL at this size in its bound (cache._WAL_CEILING).
WAL_ALLOWANCE = 256 * 1024 + 64 * 1024


def test_the_wal_stays_small_over_many_commits(tmp_path: Path) -> None:
    """1,500 commits, each with its evictions and recency notes: the WAL
    of SQLite's defaults reached megabytes over such a fill."""
    cache = DiskCache(str(tmp_path / "cache"), bound_for(200_000))
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


def test_the_index_counts_against_the_bound(tmp_path: Path) -> None:
    """Entries and the index's files together stay within the bound (issue
    22): as the index grows with the entries it records, entries give up
    room to it. 2,000 small entries are 12 times the room."""
    directory = tmp_path / "cache"
    cache = DiskCache(str(directory), bound_for(10_000))
    cache.open()
    try:
        for number in range(2000):
            put(cache, f"{number:064x}", 60)
            if number % 50 == 0:
                cache.flush()
                assert directory_bytes(directory) <= cache.max_bytes
            assert cache.stats().bytes + cache.index_bytes() <= cache.max_bytes
        grown = cache.index_bytes() - index_share()
        assert grown > 0  # 2,000 records take more pages than a new index
        # The entries kept only what the larger index left them.
        assert cache.stats().bytes <= 10_000 - grown
        assert directory_bytes(directory) <= cache.max_bytes
    finally:
        cache.close()


@pytest.mark.parametrize("bound", [0, 1, 50_000])
def test_a_bound_smaller_than_the_index_caches_nothing(
    tmp_path: Path, bound: int, caplog: pytest.LogCaptureFixture
) -> None:
    """No room beside the index: opening still works, evicts every entry
    and says so; every commit is refused (the service serves uncached)."""
    directory = tmp_path / "cache"
    roomy = DiskCache(str(directory), bound_for(10_000))
    roomy.open()
    for name in "abc":
        put(roomy, name * 64, 1000)
    roomy.close()
    cache = DiskCache(str(directory), bound)
    cache.open()
    try:
        assert cache.stats() == CacheStats(bytes=0, entries=0)
        assert not any(path.is_file() for path in (directory / "objects").rglob("*"))
        assert any("leaves no room" in record.getMessage() for record in caplog.records)
        for _ in range(3):
            with pytest.raises(CacheUnavailable):
                put(cache, "d" * 64, 10)
        assert cache.stats().entries == 0
        assert list((directory / "tmp").iterdir()) == []
    finally:
        cache.close()
