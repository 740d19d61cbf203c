"""The cache index's side of purges: each entry's original, the migration
of older caches, and removal by name or prefix under the cache's rules."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import cache as cache_module
from service.cache import DiskCache, _prefix_range
from service.formats import OutputFormat
from service.purge_stamp import PurgeStamp

from .test_cache import JPEG_HEAD, files_on_disk, read

BOUND = 10**8


def put(cache: DiskCache, key: str, original: str | None, size: int = 100) -> None:
    temp = cache.new_temp()
    os.write(temp.descriptor, (JPEG_HEAD + b"x" * size)[:size])
    cache.commit(key, temp, OutputFormat.JPEG, original=original)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    opened = DiskCache(str(tmp_path / "cache"), BOUND)
    opened.open()
    yield opened
    opened.close()


def recorded(directory: Path) -> dict[str, str | None]:
    with sqlite3.connect(directory / "index.sqlite3") as db:
        return dict(db.execute("SELECT key, original FROM entries").fetchall())


def test_a_purge_by_name_removes_that_originals_entries_only(cache: DiskCache) -> None:
    """Every entry of the original goes, file and row; others stay."""
    put(cache, "a1", "photos/cat.jpg")
    put(cache, "a2", "photos/cat.jpg")
    put(cache, "b1", "photos/cat.jpg.bak")
    put(cache, "c1", None)
    purged = cache.purge(original="photos/cat.jpg")
    assert purged.entries == 2
    assert purged.originals == {"photos/cat.jpg"}
    assert set(files_on_disk(Path(cache.directory))) == {"b1", "c1"}
    assert set(recorded(Path(cache.directory))) == {"b1", "c1"}
    assert read(cache, "a1") is None


def test_the_totals_follow_a_purge(cache: DiskCache) -> None:
    """The bound's bookkeeping counts what is left, exactly."""
    put(cache, "a1", "x/a.jpg", 100)
    put(cache, "b1", "x/b.jpg", 250)
    put(cache, "c1", "y/c.jpg", 40)
    cache.purge(prefix="x/")
    stats = cache.stats()
    assert (stats.entries, stats.bytes) == (1, 40)


def test_a_prefix_is_text_not_a_like_pattern(cache: DiskCache) -> None:
    """``%`` and ``_`` in a prefix match only themselves."""
    put(cache, "k1", "a_b/1.jpg")
    put(cache, "k2", "axb/1.jpg")
    put(cache, "k3", "100%/1.jpg")
    put(cache, "k4", "100x/1.jpg")
    assert cache.purge(prefix="a_b/").entries == 1
    assert cache.purge(prefix="100%").entries == 1
    assert set(recorded(Path(cache.directory))) == {"k2", "k4"}


def test_a_prefix_matches_every_name_that_starts_with_it(cache: DiskCache) -> None:
    """Deeper paths and longer names too, and nothing sorted just after."""
    put(cache, "k1", "photos/a.jpg")
    put(cache, "k2", "photos/2024/b.jpg")
    put(cache, "k3", "photos0")
    put(cache, "k4", "photos")
    put(cache, "k5", "https://example.com/photos/\U0010ffff.jpg")
    assert cache.purge(prefix="photos/").originals == {"photos/a.jpg", "photos/2024/b.jpg"}
    assert cache.purge(prefix="https://example.com/").entries == 1
    assert set(recorded(Path(cache.directory))) == {"k3", "k4"}


def test_the_prefix_range_carries_past_the_last_code_point() -> None:
    """The upper end skips surrogates and carries past U+10FFFF."""
    assert _prefix_range("ab") == ("ab", "ac")
    assert _prefix_range("a\ud7ff") == ("a\ud7ff", "a\ue000")
    assert _prefix_range("a\U0010ffff") == ("a\U0010ffff", "b")
    assert _prefix_range("\U0010ffff") == ("\U0010ffff", None)


def test_a_large_purge_goes_in_batches(cache: DiskCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """More entries than one batch: all of them go, counted once each."""
    monkeypatch.setattr(cache_module, "_PURGE_BATCH", 3)
    for number in range(10):
        put(cache, f"k{number}", "many.jpg")
    assert cache.purge(original="many.jpg").entries == 10
    assert cache.stats().entries == 0


def test_a_purged_entry_is_no_longer_known_to_this_process(cache: DiskCache) -> None:
    """The memo is dropped: a lookup after the purge finds nothing."""
    put(cache, "a1", "cat.jpg")
    assert cache.lookup("a1") is not None
    cache.purge(original="cat.jpg")
    assert cache.lookup("a1") is None


def test_another_process_memo_fails_its_open_and_forgets(tmp_path: Path) -> None:
    """A second handle (another worker) that knew the entry misses it once
    it is purged elsewhere, and forgets it."""
    first = DiskCache(str(tmp_path / "cache"), BOUND)
    second = DiskCache(str(tmp_path / "cache"), BOUND)
    first.open()
    second.open()
    try:
        put(first, "a1", "cat.jpg")
        assert read(second, "a1") is not None  # now in the second's memo
        first.purge(original="cat.jpg")
        assert second.open_entry("a1") is None
        assert second.lookup("a1") is None
    finally:
        first.close()
        second.close()


def test_an_existing_cache_gains_the_column_and_keeps_its_entries(tmp_path: Path) -> None:
    """A cache made before purges opens, keeps serving its entries (which
    name no original, so no purge takes them), and records new ones."""
    directory = tmp_path / "cache"
    (directory / "objects" / "ol").mkdir(parents=True)
    (directory / "objects" / "ol" / "old").write_bytes(JPEG_HEAD + b"x" * 96)
    with sqlite3.connect(directory / "index.sqlite3") as db:
        db.executescript(
            "CREATE TABLE entries (key TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "format TEXT NOT NULL, last_access REAL NOT NULL);"
            "CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), "
            "bytes INTEGER NOT NULL, entries INTEGER NOT NULL);"
            "INSERT INTO entries VALUES ('old', 100, 'jpeg', 1.0);"
            "INSERT INTO totals VALUES (0, 100, 1);"
        )
    for _ in range(2):  # idempotent: a second process connects to it too
        cache = DiskCache(str(directory), BOUND)
        cache.open()
        cache.close()
    cache = DiskCache(str(directory), BOUND)
    cache.open()
    try:
        put(cache, "new", "cat.jpg")
        assert cache.purge(prefix="c").entries == 1
        assert read(cache, "old") is not None
        assert recorded(directory) == {"old": None}
    finally:
        cache.close()
    with sqlite3.connect(directory / "index.sqlite3") as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(entries)")}
    assert "entries_by_original" in indexes


def test_a_commit_of_a_key_held_already_names_its_original(tmp_path: Path) -> None:
    """An entry adopted after a crash (no original) learns it when the key
    is committed again."""
    directory = tmp_path / "cache"
    cache = DiskCache(str(directory), BOUND)
    cache.open()
    try:
        put(cache, "k1", None)
        put(cache, "k1", "cat.jpg")
        assert recorded(directory) == {"k1": "cat.jpg"}
    finally:
        cache.close()


def test_a_name_that_is_not_utf8_is_recorded_under_none(cache: DiskCache) -> None:
    """A path of undecodable bytes (surrogate escapes) is cached, unnamed."""
    put(cache, "k1", "caf\udce9.jpg")
    assert recorded(Path(cache.directory)) == {"k1": None}


# -- the purge generation (service/purge_stamp.py) ---------------------------


def test_every_stamp_of_a_directory_sees_each_purge(tmp_path: Path) -> None:
    """Two processes' stamps: one's bump is the other's next read."""
    first, second = PurgeStamp(str(tmp_path)), PurgeStamp(str(tmp_path))
    try:
        assert first.generation() == second.generation() == 0
        assert first.bump() == 1
        assert second.bump() == 2
        assert first.generation() == second.generation() == 2
    finally:
        first.close()
        second.close()


def test_a_replaced_stamp_is_read_again_after_a_refresh(tmp_path: Path) -> None:
    """The directory deleted and made again: ``refresh`` opens the new file."""
    stamp = PurgeStamp(str(tmp_path / "cache"))
    other = PurgeStamp(str(tmp_path / "cache"))
    try:
        other.bump()
        os.unlink(tmp_path / "cache" / "purges")
        other.bump()  # a new file, at 1
        other.bump()
        assert stamp.generation() == 1  # still the unlinked file
        stamp.refresh()
        assert stamp.generation() == 2
    finally:
        stamp.close()
        other.close()


def test_a_stamp_that_cannot_be_made_reads_zero(tmp_path: Path) -> None:
    """An unusable directory (a file in its place): 0, and no exception."""
    (tmp_path / "cache").write_text("not a directory")
    stamp = PurgeStamp(str(tmp_path / "cache"))
    assert stamp.generation() == 0
    stamp.refresh()
    assert stamp.generation() == 0
