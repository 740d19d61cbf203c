"""Bounds for the tests of the cache's entries, now that the bound covers
the index's files too (service/cache.py's docstring, issue 22).

A test of the LRU of entries means some room for entries ("1000 bytes"); the
cache's bound is that room plus the index's share, measured here on a scratch
cache rather than written down, so that it follows SQLite's page size and the
cache's own ceilings. The share stays the same while the index keeps its
first pages (a few dozen small entries); a test whose entries are counted
against it says so by checking ``DiskCache.index_bytes``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from service.cache import DiskCache


@functools.cache
def index_share() -> int:
    """What a new cache's index counts against the bound, in bytes."""
    with tempfile.TemporaryDirectory(prefix="cache-room-") as scratch:
        cache = DiskCache(scratch, 2**40)
        cache.open()
        try:
            return cache.index_bytes()
        finally:
            cache.close()


def bound_for(entries_room: int) -> int:
    """The ``max_bytes`` that leaves ``entries_room`` bytes for entries."""
    return index_share() + entries_room


# Stores of their own inside a cache directory, each with its own bound
# (docs/operating.md, "Cache"): the mezzanines, the downloaded originals.
OTHER_STORES = ("mezzanine", "sources")


def directory_bytes(directory: Path) -> int:
    """The sizes of every file under ``directory``, as ``find -type f`` and
    an operator's volume see them (a file removed meanwhile counts 0),
    but for the other stores' subdirectories, bounded apart."""
    total = 0
    for parent, subdirectories, names in os.walk(directory):
        if parent == str(directory):
            subdirectories[:] = [name for name in subdirectories if name not in OTHER_STORES]
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name), follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total
