"""The decode budget: renders that decode whole images wait for room;
streaming renders never wait (decode_budget.py, render/memory.py)."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import pyvips

from service.decode_budget import DecodeBudget
from service.errors import UnprocessableImage
from service.render import HeaderFacts, RenderPolicy, decode_reservation, read_facts
from service.server.state import METRICS, RENDERS

from .conftest import CORPUS, Client, MakeClient, decode
from .test_cache_http import GATE_SECONDS
from .waiting import eventually_async

# -- the budget --------------------------------------------------------------


async def test_reservations_that_fit_run_at_once_and_others_wait() -> None:
    budget = DecodeBudget(100)
    await budget.acquire(60)
    await budget.acquire(40)
    third = asyncio.ensure_future(budget.acquire(10))
    await asyncio.sleep(0)
    assert not third.done()
    assert budget.waiting == 1
    budget.release(60)
    await third
    assert budget.reserved == 50


async def test_streaming_renders_never_wait() -> None:
    budget = DecodeBudget(100)
    await budget.acquire(100)
    await asyncio.wait_for(budget.acquire(0), 1)  # returns without waiting
    assert budget.reserved == 100


async def test_one_larger_than_the_budget_runs_alone() -> None:
    budget = DecodeBudget(100)
    await budget.acquire(500)  # alone: admitted
    small = asyncio.ensure_future(budget.acquire(1))
    await asyncio.sleep(0)
    assert not small.done()
    budget.release(500)
    await small


async def test_waiters_are_served_in_arrival_order() -> None:
    """A big waiter is not overtaken by a small one that would fit."""
    budget = DecodeBudget(100)
    await budget.acquire(70)
    big = asyncio.ensure_future(budget.acquire(80))
    await asyncio.sleep(0)
    small = asyncio.ensure_future(budget.acquire(10))  # would fit beside the 70
    await asyncio.sleep(0)
    assert not big.done()
    assert not small.done()
    budget.release(70)
    await big
    await small  # 80 + 10 fit together
    assert budget.reserved == 90


async def test_a_cancelled_waiter_gives_way() -> None:
    budget = DecodeBudget(100)
    await budget.acquire(70)
    big = asyncio.ensure_future(budget.acquire(80))
    await asyncio.sleep(0)
    small = asyncio.ensure_future(budget.acquire(10))
    await asyncio.sleep(0)
    big.cancel()
    await asyncio.wait_for(small, 1)  # no longer behind the big one
    assert budget.reserved == 80
    assert budget.waiting == 0


# -- the estimate ------------------------------------------------------------


def facts(path: Path) -> HeaderFacts:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        read = read_facts(descriptor, allow_svg=False)
        assert os.lseek(descriptor, 0, os.SEEK_CUR) == 0  # the render reads from the start
        return read
    finally:
        os.close(descriptor)


def estimate(path: Path, policy: RenderPolicy | None = None) -> int:
    """The whole-image decode memory; with ``policy``, what the budget reserves."""
    header = facts(path)
    return header.decode_bytes if policy is None else decode_reservation(header, policy)


def photo(directory: Path, name: str, **save: object) -> Path:
    """A copy of the corpus's 1800x1200 photo, saved with ``save``."""
    path = directory / name
    image = pyvips.Image.new_from_file(os.fspath(CORPUS / "exif_landscape_1.jpg"))
    image.write_to_file(os.fspath(path), **save)
    return path


def test_a_progressive_jpeg_needs_its_whole_coefficient_buffer(tmp_path: Path) -> None:
    # 1800x1200: 2 bytes per coefficient, 1.5 samples a pixel in 4:2:0.
    subsampled = photo(tmp_path, "p420.jpg", interlace=True, subsample_mode="on")
    assert estimate(subsampled) == 1800 * 1200 * 3
    full = photo(tmp_path, "p444.jpg", interlace=True, subsample_mode="off")
    assert estimate(full) == 1800 * 1200 * 6


def test_streaming_originals_need_nothing(tmp_path: Path) -> None:
    assert estimate(photo(tmp_path, "baseline.jpg")) == 0
    assert estimate(photo(tmp_path, "plain.png")) == 0


def test_gif_frames_are_decoded_onto_a_whole_canvas() -> None:
    assert estimate(CORPUS / "gif_interlaced_trns.gif") == 100 * 100 * 6


def test_originals_the_render_refuses_reserve_nothing(tmp_path: Path) -> None:
    """Over a source limit, or not accepted: refused in milliseconds, so
    they must not wait for (or hold) room in the budget (a type we do not
    accept is refused when its header is read, before any reservation)."""
    limits = RenderPolicy(
        quality={},
        max_output_size=4096,
        max_source_pixels=100_000_000,
        avif_effort=0,
        max_decode_bytes=10**9,
    )
    progressive = photo(tmp_path, "p.jpg", interlace=True)
    assert estimate(progressive) > 0
    assert estimate(progressive, limits) == estimate(progressive)  # within every limit
    small_limit = replace(limits, max_source_pixels=1800 * 1200 - 1)
    assert estimate(progressive, small_limit) == 0
    assert estimate(progressive, replace(limits, max_decode_bytes=1)) == 0
    with pytest.raises(UnprocessableImage):  # blocked as untrusted, or not accepted
        facts(CORPUS / "svg_logo.svg")


def test_interlaced_png_and_heif_are_decoded_whole(tmp_path: Path) -> None:
    assert estimate(photo(tmp_path, "adam7.png", interlace=True)) == 1800 * 1200 * 3
    assert estimate(CORPUS / "avif_alpha.avif") == 64 * 64 * 18


def test_an_unreadable_header_is_refused_before_any_reservation(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(UnprocessableImage, match="not an image"):
        facts(junk)


# -- over HTTP ---------------------------------------------------------------


def waits(client: Client) -> float:
    value = client.app[METRICS].registry.get_sample_value("image_factory_decode_budget_waits_total")
    assert value is not None
    return value


async def test_whole_image_decodes_past_the_budget_wait_for_each_other(
    originals: Path, make_client: MakeClient
) -> None:
    """Two render threads, a budget for one progressive JPEG: while the first
    is held in its thread, the second waits on the loop (no thread taken),
    and a baseline JPEG still renders beside the first."""
    need = estimate(photo(originals, "progressive.jpg", interlace=True))
    client = await make_client(concurrency=2, decode_budget=need + need // 2)
    renders = client.app[RENDERS]
    gate, held = threading.Event(), threading.Event()
    entered = []

    def hold_first() -> None:
        entered.append(threading.current_thread().name)
        if not held.is_set():
            held.set()
            gate.wait(GATE_SECONDS)

    renders.before_render = hold_first
    first = asyncio.ensure_future(client.get("/picture/progressive.jpg?w=300"))
    await eventually_async(held.is_set, GATE_SECONDS, message="the first render never started")
    second = asyncio.ensure_future(client.get("/picture/progressive.jpg?w=301"))
    await eventually_async(
        lambda: waits(client) == 1, GATE_SECONDS, message="the second never waited on the budget"
    )
    streaming = await client.get("/picture/exif_landscape_1.jpg?w=302")
    assert streaming.status == 200  # the free thread was not taken by the waiter
    assert len(entered) == 2  # the held render and the baseline JPEG, not the second
    assert not second.done()
    gate.set()
    for response in await asyncio.gather(first, second):
        assert response.status == 200, await response.text()
        assert decode(await response.read()).width in (300, 301)
    assert len(entered) == 3
    reserved = client.app[METRICS].registry.get_sample_value(
        "image_factory_decode_budget_reserved_bytes"
    )
    assert reserved == 0


@pytest.mark.parametrize("name", ["exif_landscape_1.jpg", "jpeg_progressive_orient6.jpg"])
async def test_renders_within_the_budget_never_wait(client: Client, name: str) -> None:
    responses = await asyncio.gather(*(client.get(f"/picture/{name}?w={w}") for w in (90, 91)))
    assert [response.status for response in responses] == [200, 200]
    assert waits(client) == 0


async def test_an_original_over_the_decode_limit_is_a_422(
    originals: Path, make_client: MakeClient
) -> None:
    """--max-decode-bytes refuses from the header; at the limit, and for
    streaming originals, renders go on."""
    need = estimate(photo(originals, "progressive.jpg", interlace=True))
    refusing = await make_client(max_decode_bytes=need - 1)
    refused = await refusing.get("/picture/progressive.jpg?w=300")
    assert refused.status == 422
    assert "to decode" in (await refused.json())["error"]
    streaming = await refusing.get("/picture/exif_landscape_1.jpg?w=300")
    assert streaming.status == 200
    assert waits(refusing) == 0
    at_limit = await make_client(max_decode_bytes=need)
    assert (await at_limit.get("/picture/progressive.jpg?w=300")).status == 200
