"""Issue 22: ``--cache-max-bytes`` bounds the cache directory's size, every
file in it (entries, the index with its WAL and -shm, temporaries, spills),
plus only the renders in flight: at most ``concurrency`` outputs.

Through the real application, real renders of a real photo, a real disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.renders import RenderedFile, Served
from service.server.state import METRICS, RENDERS

from .cache_room import directory_bytes, index_share
from .conftest import MakeClient, decode

BOUND = 3 * 2**20
CONCURRENCY = 2
WIDTHS = range(300, 460)  # 160 distinct PNG renders, about 7 times the bound


def names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


async def test_the_directory_stays_within_the_bound_over_a_long_fill(
    make_client: MakeClient, fallback_root: Path
) -> None:
    """After every pair of requests the directory is within the bound; seen
    from inside the renders, while others are being written and committed,
    within the bound plus the renders in flight."""
    client = await make_client(cache_max_bytes=BOUND, concurrency=CONCURRENCY)
    renders = client.app[RENDERS]
    cache_dir = Path(renders.cache.directory)
    in_flight: list[int] = []

    def sample() -> None:  # in a render thread, before it renders
        in_flight.append(directory_bytes(cache_dir))

    renders.before_render = sample
    largest = served = 0
    for start in range(WIDTHS.start, WIDTHS.stop, CONCURRENCY):
        responses = await asyncio.gather(
            *(
                client.get(f"/picture/retina.jpg?w={width}&format=png")
                for width in range(start, start + CONCURRENCY)
            )
        )
        for response in responses:
            assert response.status == 200, await response.text()
            assert response.headers["X-Cache"] == "MISS"
            body = await response.read()
            decode(body)
            largest = max(largest, len(body))
            served += len(body)
        # Nothing in flight now: nothing beyond the bound either.
        assert directory_bytes(cache_dir) <= BOUND
    assert served > 5 * BOUND
    assert len(in_flight) == len(WIDTHS)
    assert max(in_flight) <= BOUND + CONCURRENCY * largest
    evictions = client.app[METRICS].registry.get_sample_value("image_factory_cache_evictions_total")
    assert evictions is not None
    assert evictions > 0
    # The index's files are among what the bound covered.
    assert {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"} <= names(cache_dir)
    assert names(fallback_root) == set()


async def test_a_bound_smaller_than_the_index_serves_everything_uncached(
    make_client: MakeClient, fallback_root: Path
) -> None:
    """No room beside the index: every answer is a 200, rendered each time;
    the renders pass through the cache volume's spill, not $TMPDIR, and are
    gone from it once answered."""
    bound = index_share() // 2
    client = await make_client(cache_max_bytes=bound, concurrency=CONCURRENCY)
    renders = client.app[RENDERS]
    cache_dir = Path(renders.cache.directory)
    spilled: list[Path] = []
    open_rendered = renders._open_rendered

    def open_and_note(rendered: RenderedFile, render_seconds: float | None) -> Served | None:
        # In a thread.
        spilled.append(Path(rendered.path))
        assert Path(rendered.path).is_file()
        return open_rendered(rendered, render_seconds)

    # Where each uncached render is when its requests open it.
    renders._open_rendered = open_and_note  # type: ignore[method-assign]
    for _ in range(2):
        responses = await asyncio.gather(
            *(client.get(f"/picture/retina.jpg?w={width}") for width in (200, 200, 201))
        )
        for response in responses:
            assert response.status == 200, await response.text()
            assert response.headers["X-Cache"] == "MISS"
            decode(await response.read())
    assert spilled
    assert {path.parent.parent for path in spilled} == {cache_dir / "spill"}
    assert not any(path.exists() for path in spilled)  # removed once opened
    assert files_under(cache_dir / "objects") == []
    assert files_under(cache_dir / "spill") == []
    assert directory_bytes(cache_dir) <= index_share()
    assert names(fallback_root) == set()
