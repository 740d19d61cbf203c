"""The hit path's memo: a request answered a moment ago is answered again on
the event loop, and a replaced original or a purge is seen in time."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from multidict import CIMultiDict

from service.purge_stamp import PurgeStamp
from service.server.hit_memo import WINDOW_SECONDS, HitMemo
from service.server.state import HIT_MEMO, METRICS, RENDERS, SETTINGS

from .conftest import Client, decode

GATE_SECONDS = 30


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hits(client: Client) -> float:
    value = client.app[METRICS].registry.get_sample_value("image_factory_cache_hits_total")
    assert value is not None
    return value


def replace_original(originals: Path, name: str, source: str) -> None:
    replacement = originals / "replacement.tmp"
    shutil.copy(originals / source, replacement)
    os.replace(replacement, originals / name)


async def test_a_repeated_hit_is_answered_while_every_thread_is_busy(client: Client) -> None:
    """A remembered request needs no thread: it is served with the pool held."""
    url = "/picture/rocket.jpg?w=120"
    assert (await client.get(url)).status == 200  # rendered
    first = await client.get(url)  # a hit, remembered
    assert first.headers["X-Cache"] == "HIT"
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1)
    loop.set_default_executor(pool)
    gate = threading.Event()
    held = loop.run_in_executor(None, gate.wait, GATE_SECONDS)
    try:
        again = await asyncio.wait_for(client.get(url), GATE_SECONDS / 2)
        assert again.status == 200
        assert again.headers["X-Cache"] == "HIT"
        assert await again.read() == await first.read()
        assert not held.done()  # the one thread was held all along
    finally:
        gate.set()
        await held


async def test_a_remembered_hit_is_counted_and_logged_as_a_hit(client: Client) -> None:
    url = "/picture/rocket.jpg?w=121"
    await client.get(url)
    before = hits(client)
    for _ in range(3):
        response = await client.get(url)
        assert response.headers["X-Cache"] == "HIT"
        assert response.headers["Content-Type"] == "image/jpeg"
        assert "X-Request-Id" in response.headers
    assert hits(client) == before + 3


async def test_a_remembered_etag_is_answered_304(client: Client) -> None:
    url = "/picture/rocket.jpg?w=122"
    first = await client.get(url)
    await client.get(url)
    again = await client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert again.headers["ETag"] == first.headers["ETag"]


async def test_another_accept_header_is_negotiated_anew(client: Client) -> None:
    """The memo is keyed by Accept too: auto format never mixes them up."""
    url = "/picture/rocket.jpg?w=123&format=auto"
    webp = await client.get(url, headers={"Accept": "image/webp"})
    jpeg = await client.get(url, headers={"Accept": "image/jpeg"})
    assert webp.headers["Content-Type"] == "image/webp"
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    again = await client.get(url, headers={"Accept": "image/webp"})
    assert again.headers["Content-Type"] == "image/webp"


async def test_a_replaced_original_is_seen_once_the_window_ends(
    client: Client, originals: Path
) -> None:
    """Within the window the old render is served; after it, the new one."""
    clock = Clock()
    client.app[HIT_MEMO].clock = clock
    shutil.copy(originals / "retina.jpg", originals / "photo.jpg")
    url = "/picture/photo.jpg?w=64"
    old = await client.get(url)
    old_body = await old.read()
    replace_original(originals, "photo.jpg", "rocket.jpg")
    clock.now += WINDOW_SECONDS / 2
    within = await client.get(url)
    assert within.headers["ETag"] == old.headers["ETag"]
    clock.now += WINDOW_SECONDS
    after = await client.get(url)
    assert after.headers["X-Cache"] == "MISS"
    assert after.headers["ETag"] != old.headers["ETag"]
    assert decode(await after.read()).size != decode(old_body).size  # rocket is not square


async def test_a_purge_by_another_process_drops_the_memo(client: Client, originals: Path) -> None:
    """Any purge (the generation moved) makes every request go the full way."""
    client.app[HIT_MEMO].clock = Clock()  # the window never ends by itself
    shutil.copy(originals / "retina.jpg", originals / "photo.jpg")
    url = "/picture/photo.jpg?w=65"
    old = await client.get(url)
    replace_original(originals, "photo.jpg", "rocket.jpg")
    assert (await client.get(url)).headers["ETag"] == old.headers["ETag"]
    stamp = PurgeStamp(client.app[SETTINGS].cache_dir)
    try:
        stamp.bump()  # as `image-factory purge` does, after its deletions
    finally:
        stamp.close()
    after = await client.get(url)
    assert after.headers["ETag"] != old.headers["ETag"]


async def test_an_evicted_entry_is_rendered_again(client: Client) -> None:
    """A remembered key whose file is gone goes the full way: a render."""
    url = "/picture/rocket.jpg?w=124"
    first = await client.get(url)
    await client.get(url)
    cache = client.app[RENDERS].cache
    digest = first.headers["ETag"].strip('"')
    (path,) = [
        os.path.join(root, name)
        for root, _, names in os.walk(cache.directory)
        for name in names
        if name.startswith(digest)
    ]
    os.unlink(path)
    again = await client.get(url)
    assert again.status == 200
    assert again.headers["X-Cache"] == "MISS"
    assert await again.read() == await first.read()


def test_the_memo_is_bounded_dropping_the_oldest() -> None:
    memo = HitMemo(lambda: 0, client_hints=False, limit=2)
    for name in ("a", "b", "c"):
        memo.remember((name,), name, f'"{name}"', CIMultiDict())
    assert len(memo) == 2
    assert memo.get(("a",)) is None
    assert memo.get(("c",)) is not None


def test_a_remembered_answer_expires_with_its_window() -> None:
    clock = Clock()
    memo = HitMemo(lambda: 0, client_hints=False, clock=clock)
    memo.remember(("a",), "a", '"a"', CIMultiDict())
    clock.now += WINDOW_SECONDS
    assert memo.get(("a",)) is not None
    clock.now += 0.001
    assert memo.get(("a",)) is None
