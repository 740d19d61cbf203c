"""Uncached renders' spill files: on the cache volume, moved there without a
second copy, cleaned up after dead processes, and in $TMPDIR only when the
cache volume cannot be written (issue 22)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cache import DiskCache
from service.spill import Spill

from .cache_room import bound_for


@pytest.fixture
def spill(tmp_path: Path, fallback_root: Path) -> Iterator[Spill]:
    spill = Spill(str(tmp_path / "cache"))
    yield spill
    spill.close()


def written(path: Path, data: bytes) -> tuple[int, str]:
    """A finished render in the cache's tmp/: its open descriptor and path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(descriptor, data)
    return descriptor, str(path)


def test_a_spill_is_a_rename_on_the_cache_volume(
    spill: Spill, tmp_path: Path, fallback_root: Path
) -> None:
    descriptor, path = written(tmp_path / "cache" / "tmp" / "render", b"picture")
    inode = os.fstat(descriptor).st_ino
    try:
        spilled = Path(spill.take(path, descriptor))
    finally:
        os.close(descriptor)
    assert spilled.parent.parent == tmp_path / "cache" / "spill"
    assert spilled.parent.name.startswith(f"{os.getpid()}-")
    assert spilled.read_bytes() == b"picture"
    assert spilled.stat().st_ino == inode  # moved, not copied: one output on disk
    assert not Path(path).exists()
    assert list(fallback_root.iterdir()) == []


def test_a_new_spill_file_is_on_the_cache_volume(spill: Spill, tmp_path: Path) -> None:
    descriptor, path = spill.new_file()
    os.close(descriptor)
    assert Path(path).parent.parent == tmp_path / "cache" / "spill"


def test_a_deleted_spill_directory_is_made_again(spill: Spill, tmp_path: Path) -> None:
    descriptor, first = spill.new_file()
    os.close(descriptor)
    os.unlink(first)
    os.rmdir(Path(first).parent)
    descriptor, second = spill.new_file()
    os.close(descriptor)
    assert Path(second).parent != Path(first).parent
    assert Path(second).parent.parent == tmp_path / "cache" / "spill"


def test_an_unwritable_cache_volume_falls_back_to_tmpdir_and_says_so_once(
    tmp_path: Path, fallback_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file where the cache directory should be: nothing can be made
    there (a full or read-only volume fails the same calls)."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    spill = Spill(str(blocked / "cache"))
    try:
        for _ in range(2):
            descriptor, path = written(tmp_path / "elsewhere" / os.urandom(4).hex(), b"pic")
            try:
                spilled = Path(spill.take(path, descriptor))
            finally:
                os.close(descriptor)
            assert spilled.read_bytes() == b"pic"
            assert spilled.parent.parent == fallback_root
    finally:
        spill.close()
    warnings = [r for r in caplog.records if "go to $TMPDIR" in r.getMessage()]
    assert len(warnings) == 1
    assert list(fallback_root.iterdir()) == []  # removed at close


def test_close_removes_the_process_spill_directories(spill: Spill, fallback_root: Path) -> None:
    on_volume = spill.new_file()
    off_volume = spill.new_file_off_volume(OSError("the volume is full"))
    for descriptor, _ in (on_volume, off_volume):
        os.close(descriptor)
    spill.close()
    for _, path in (on_volume, off_volume):
        assert not Path(path).parent.exists()


def test_sweep_removes_only_spills_older_than_asked(spill: Spill) -> None:
    descriptor, old = spill.new_file()
    os.close(descriptor)
    descriptor, new = spill.new_file()
    os.close(descriptor)
    os.utime(old, (1_000_000, 1_000_000))
    spill.sweep(older_than=2_000_000)
    assert not Path(old).exists()
    assert Path(new).exists()


def test_opening_the_cache_removes_the_spills_of_dead_processes(
    spill: Spill, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    descriptor, live = spill.new_file()  # this process's: locked, kept
    os.close(descriptor)
    dead = cache_dir / "spill" / "4242-left-by-a-dead-process"
    dead.mkdir(parents=True)
    (dead / "render").write_bytes(b"spilled")
    cache = DiskCache(str(cache_dir), bound_for(10_000))
    cache.open()
    cache.close()
    assert not dead.exists()
    assert Path(live).exists()
