"""The cache across processes: crashes, and two services sharing one directory."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from service.cache import DiskCache
from service.settings import Settings

from .cache_room import bound_for, directory_bytes
from .cache_writer import ROOM, payload
from .conftest import decode
from .serving import running_service

ROOT = Path(__file__).parent.parent


def all_entries_whole(directory: Path) -> int:
    """Open the cache as a restarted service would; check every file."""
    cache = DiskCache(str(directory), bound_for(ROOM))
    cache.open()
    try:
        assert list((directory / "tmp").iterdir()) == []  # stale temporaries removed
        total = 0
        for path in (directory / "objects").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert data == payload(path.name, len(data)), f"{path.name} is not whole"
                total += len(data)
        stats = cache.stats()
        assert stats.bytes == total
        assert total <= ROOM
        assert directory_bytes(directory) <= bound_for(ROOM)
        return stats.entries
    finally:
        cache.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_during_writes_leaves_only_whole_files(tmp_path: Path, seed: int) -> None:
    """SIGKILL at some point mid-stream; a restarted cache serves only whole files."""
    directory = tmp_path / "cache"
    for round_number in range(3):
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cache_writer",
                str(directory),
                str(seed * 10 + round_number),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        ) as writer:
            assert writer.stdout is not None
            # Wait for a seed-dependent number of commits, then kill mid-write.
            for _ in range(20 + seed * 7 + round_number * 5):
                assert writer.stdout.readline().startswith("committed")
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        assert all_entries_whole(directory) > 0


async def test_two_services_share_one_small_cache(tmp_path: Path, originals: Path) -> None:
    """Two independent services, one directory, overlapping keys, a tiny bound:
    every answer is a 200 that decodes, and the bound holds (60,000 bytes
    of room for entries beside the index)."""
    cache_dir = tmp_path / "shared-cache"
    bound = bound_for(60_000)
    arguments = ("--originals", str(originals), "--cache-dir", str(cache_dir))
    with (
        running_service(*arguments, "--cache-max-bytes", str(bound)) as first,
        running_service(*arguments, "--cache-max-bytes", str(bound)) as second,
    ):
        urls = [
            f"{base}/picture/{name}?w={width}&format={fmt}"
            for base in (first.base, second.base)
            for name in ("retina.jpg", "chelsea.png", "rocket.jpg")
            for width in (40, 90, 160)
            for fmt in ("jpeg", "webp")
        ]
        async with aiohttp.ClientSession() as session:

            async def fetch(url: str) -> None:
                async with session.get(url) as response:
                    assert response.status == 200, await response.text()
                    decode(await response.read())

            for _ in range(3):
                await asyncio.gather(*(fetch(url) for url in urls))
    on_disk = sum(p.stat().st_size for p in (cache_dir / "objects").rglob("*") if p.is_file())
    assert directory_bytes(cache_dir) <= bound
    # The mezzanine (on by default) built some, within its own bound.
    mezzanines = directory_bytes(cache_dir / "mezzanine")
    assert 0 < mezzanines <= Settings().mezzanine_max_bytes
    cache = DiskCache(str(cache_dir), bound)
    cache.open()
    assert 0 < on_disk <= bound - cache.index_bytes()
    assert cache.stats().bytes == on_disk
    cache.close()
