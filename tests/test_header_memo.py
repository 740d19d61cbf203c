"""The original's header is read once per original (service/header_memo.py):
the key, the decode budget and the render of a miss share one read, and
later misses of the same original read nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pyvips

from service import header_memo
from service.render import header

from .conftest import Client, renders_total


class CountedReads:
    """Wraps ``header.load_header`` (what ``read_facts`` opens the header
    with) and counts the calls."""

    def __init__(self, load: Callable[[int], pyvips.Image]) -> None:
        self.load = load
        self.count = 0

    def __call__(self, descriptor: int) -> pyvips.Image:
        self.count += 1
        return self.load(descriptor)


@pytest.fixture
def header_reads(monkeypatch: pytest.MonkeyPatch) -> CountedReads:
    header_memo._remembered.cache_clear()  # what earlier tests read is not this test's
    counted = CountedReads(header.load_header)
    monkeypatch.setattr(header, "load_header", counted)
    return counted


async def get(client: Client, url: str, cache: str) -> None:
    """GET ``url``: a 200, a cache MISS or HIT as ``cache`` says."""
    before = renders_total(client)
    response = await client.get(url)
    assert response.status == 200, await response.text()
    await response.read()
    assert response.headers["X-Cache"] == cache
    assert renders_total(client) == before + (1 if cache == "MISS" else 0)


async def test_a_miss_reads_the_header_once_and_later_ones_not_at_all(
    client: Client, header_reads: CountedReads
) -> None:
    await get(client, "/picture/retina.jpg?w=100", "MISS")
    assert header_reads.count == 1  # for the decode budget and the render both
    await get(client, "/picture/retina.jpg?w=100", "HIT")
    assert header_reads.count == 1  # a hit reads nothing
    await get(client, "/picture/retina.jpg?w=200", "MISS")
    assert header_reads.count == 1  # another variant of an original already read


async def test_a_key_that_needs_the_header_shares_the_render_s_read(
    client: Client, header_reads: CountedReads
) -> None:
    """q=50 with no format on a PNG: the key asks whether the output is
    lossy (it is not: PNG), then the render runs, on one read."""
    await get(client, "/picture/chelsea.png?w=100&q=50", "MISS")
    assert header_reads.count == 1
    await get(client, "/picture/chelsea.png?w=100&q=50", "HIT")
    assert header_reads.count == 1  # keying the hit asked the memo, not the file
