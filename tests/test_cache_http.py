"""The cache as the HTTP client sees it: coalescing, keys, failing safe."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

from service.server.state import METRICS, RENDERS

from .conftest import Client, MakeClient, decode, fill, renders_total
from .waiting import eventually_async

GATE_SECONDS = 30


async def test_concurrent_identical_requests_render_once(client: Client) -> None:
    """50 concurrent requests for one missing variant: exactly one render."""
    gate = threading.Event()
    renders = client.app[RENDERS]

    def hold() -> None:
        gate.wait(GATE_SECONDS)

    renders.before_render = hold
    before = renders_total(client)
    url = "/picture/retina.jpg?w=333&format=webp"
    requests = [asyncio.ensure_future(client.get(url)) for _ in range(50)]
    await eventually_async(  # one renders, 49 wait on it
        lambda: renders.waiting == 49, GATE_SECONDS, message="49 requests never waited"
    )
    gate.set()
    responses = await asyncio.gather(*requests)
    bodies = {await response.read() for response in responses}
    assert {response.status for response in responses} == {200}
    assert {response.headers["X-Cache"] for response in responses} == {"MISS"}
    assert len(bodies) == 1
    assert renders_total(client) == before + 1


async def test_304_is_answered_without_rendering(client: Client) -> None:
    first = await client.get("/picture/rocket.jpg?w=100")
    before = renders_total(client)
    etag = first.headers["ETag"]
    other_size = await client.get("/picture/rocket.jpg?w=101", headers={"If-None-Match": etag})
    assert other_size.status == 200
    assert renders_total(client) == before + 1
    # A 304 for a variant never rendered yet: the key alone decides.
    fresh = await client.get("/picture/rocket.jpg?w=102")
    fresh_etag = fresh.headers["ETag"]
    shutil.rmtree(client.app[RENDERS].cache.directory)
    before = renders_total(client)
    again = await client.get("/picture/rocket.jpg?w=102", headers={"If-None-Match": fresh_etag})
    assert again.status == 304
    assert renders_total(client) == before


@pytest.mark.parametrize(
    ("plain", "ignored"),
    [
        # bg without padding, where nothing is flattened: an opaque original,
        # as its own format or as a JPEG; an alpha original kept as PNG.
        ("rocket.jpg?w=77", "rocket.jpg?w=77&bg=000000"),
        ("rocket.jpg?w=77&format=jpeg", "rocket.jpg?w=77&format=jpeg&bg=000000"),
        ("png_rgba_small.png?w=20", "png_rgba_small.png?w=20&bg=000000"),
        # white is what alpha is flattened onto anyway
        ("png_rgba_small.png?w=20&format=jpeg", "png_rgba_small.png?w=20&format=jpeg&bg=ffffff"),
        # q for an original whose own format is lossless
        ("chelsea.png?w=77", "chelsea.png?w=77&q=10"),
        ("chelsea.png?w=77&format=png", "chelsea.png?w=77&format=png&q=10"),
    ],
)
async def test_a_parameter_that_does_not_apply_shares_the_entry(
    client: Client, plain: str, ignored: str
) -> None:
    """The contract: a parameter that does not apply is not part of the key."""
    first = await client.get(f"/picture/{plain}")
    before = renders_total(client)
    second = await client.get(f"/picture/{ignored}")
    assert second.status == 200
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["X-Cache"] == "HIT"
    assert renders_total(client) == before
    assert await second.read() == await first.read()


@pytest.mark.parametrize(
    ("plain", "applied"),
    [
        ("png_rgba_small.png?w=20&format=jpeg", "png_rgba_small.png?w=20&format=jpeg&bg=000000"),
        ("rocket.jpg?w=77&h=77&fit=pad", "rocket.jpg?w=77&h=77&fit=pad&bg=000000"),
        ("rocket.jpg?w=77", "rocket.jpg?w=77&q=10"),
        ("tiff_g4_orient6.tif?w=40", "tiff_g4_orient6.tif?w=40&q=10"),  # answered as JPEG
    ],
)
async def test_a_parameter_that_applies_gets_its_own_entry(
    client: Client, plain: str, applied: str
) -> None:
    first = await client.get(f"/picture/{plain}")
    second = await client.get(f"/picture/{applied}")
    assert second.status == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert second.headers["X-Cache"] == "MISS"
    assert await second.read() != await first.read()


def cache_errors(client: Client) -> float:
    value = client.app[METRICS].registry.get_sample_value("image_factory_cache_errors_total")
    assert value is not None
    return value


async def test_deleted_cache_directory_degrades_then_resumes(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The contract: a deleted directory degrades with a log line and a
    metric, and the cache comes back whole: its index too, not only the
    folders (SQLite would go on writing to the unlinked index, so this
    process's bound and LRU order would part from every other process's)."""
    cache = client.app[RENDERS].cache
    cache_dir = Path(cache.directory)
    await client.get("/picture/retina.jpg?w=50")
    shutil.rmtree(cache_dir)
    errors = cache_errors(client)
    response = await client.get("/picture/retina.jpg?w=51")
    assert response.status == 200
    decode(await response.read())
    assert cache_errors(client) == errors + 1
    assert any("deleted or replaced" in record.getMessage() for record in caplog.records)
    hit = await client.get("/picture/retina.jpg?w=51")
    assert hit.status == 200
    assert hit.headers["X-Cache"] == "HIT"  # the cache came back with the directory
    assert (cache_dir / "index.sqlite3").is_file()
    stats = await client.app[RENDERS].to_thread(cache.stats)
    assert (stats.entries, stats.bytes) == (1, int(hit.headers["Content-Length"]))


async def test_a_deleted_directory_noticed_by_housekeeping_is_counted_too(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The once-a-second recency flush may be the first to touch the index
    after the deletion (a hit left a note to write): it too logs, counts and
    reopens."""
    cache = client.app[RENDERS].cache
    await client.get("/picture/retina.jpg?w=50")
    hit = await client.get("/picture/retina.jpg?w=50")
    assert hit.headers["X-Cache"] == "HIT"  # a recency note is pending
    shutil.rmtree(cache.directory)
    errors = cache_errors(client)
    await client.app[RENDERS].to_thread(cache.flush)
    assert cache_errors(client) == errors + 1
    assert any("deleted or replaced" in record.getMessage() for record in caplog.records)
    assert (Path(cache.directory) / "index.sqlite3").is_file()


async def test_a_restored_directory_is_adopted_and_bounded(client: Client, tmp_path: Path) -> None:
    """Restored from a backup under a running process: its files are
    adopted into the reopened index, so they count against the bound."""
    cache = client.app[RENDERS].cache
    for width in (50, 51, 52):
        await client.get(f"/picture/retina.jpg?w={width}")
    backup = tmp_path / "backup"
    shutil.copytree(cache.directory, backup)
    shutil.rmtree(cache.directory)
    shutil.copytree(backup, cache.directory)
    (Path(cache.directory) / "index.sqlite3").unlink()  # the index lost, the files kept
    stats = await client.app[RENDERS].to_thread(cache.stats)
    assert stats.entries == 3
    again = await client.get("/picture/retina.jpg?w=51")
    assert again.headers["X-Cache"] == "HIT"


async def test_full_filesystem_still_answers(
    tiny_filesystem: Path, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """With no space left, renders are served uncached and counted; their
    spill files, which belong on the cache volume, go to $TMPDIR instead
    (said once)."""
    client = await make_client(cache_dir=str(tiny_filesystem / "cache"))
    await client.get("/picture/retina.jpg?w=40")  # the index exists now
    filler = tiny_filesystem / "filler"
    await asyncio.to_thread(fill, filler)  # blocking writes, off the loop
    for width in (1200, 1300, 1400):
        response = await client.get(f"/picture/retina.jpg?w={width}&format=png")
        assert response.status == 200, await response.text()
        assert decode(await response.read()).size == (width, width)
    errors = client.app[METRICS].registry.get_sample_value("image_factory_cache_errors_total")
    assert errors is not None
    assert errors >= 1
    fallbacks = [r for r in caplog.records if "go to $TMPDIR" in r.getMessage()]
    assert len(fallbacks) == 1
    filler.unlink()
    response = await client.get("/picture/retina.jpg?w=500&format=png")
    assert response.status == 200
    again = await client.get("/picture/retina.jpg?w=500&format=png")
    assert again.headers["X-Cache"] == "HIT"


async def test_an_original_replaced_mid_request_is_never_cached_under_the_old_key(
    client: Client, originals: Path
) -> None:
    """Replaced between keying and rendering: a 503 to retry, not the new
    picture stored under the old file's key."""
    shutil.copy(originals / "retina.jpg", originals / "swap.jpg")
    renders = client.app[RENDERS]

    def replace_original() -> None:
        renders.before_render = None
        replacement = originals / "swap.tmp"
        shutil.copy(originals / "rocket.jpg", replacement)
        os.replace(replacement, originals / "swap.jpg")

    renders.before_render = replace_original
    first = await client.get("/picture/swap.jpg?w=64")
    assert first.status == 503
    assert first.headers["Retry-After"]
    again = await client.get("/picture/swap.jpg?w=64")
    assert again.status == 200
    width, height = decode(await again.read()).size
    assert width == 64
    assert abs(height - 427 * 64 / 640) <= 1  # the new original, rocket, not square retina


async def test_a_cache_on_a_full_filesystem_at_start_still_serves(
    tiny_filesystem: Path, make_client: MakeClient
) -> None:
    """The cache volume is full before the service starts (SQLite cannot
    even create its index): the service starts, serves uncached and counts
    it, then caches again once space is freed."""
    filler = tiny_filesystem / "filler"
    await asyncio.to_thread(fill, filler)  # blocking writes, off the loop
    client = await make_client(cache_dir=str(tiny_filesystem / "cache"))
    for width in (300, 301):
        response = await client.get(f"/picture/retina.jpg?w={width}")
        assert response.status == 200, await response.text()
        assert response.headers["X-Cache"] == "MISS"
        assert decode(await response.read()).size == (width, width)
    errors = client.app[METRICS].registry.get_sample_value("image_factory_cache_errors_total")
    assert errors is not None
    assert errors >= 2  # at start, then again on use
    filler.unlink()
    await client.get("/picture/retina.jpg?w=302")
    again = await client.get("/picture/retina.jpg?w=302")
    assert again.headers["X-Cache"] == "HIT"
