"""trim: a uniform border removed, exactly, and its whole-image decode
counted like the others (render/trim.py, render/limits.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import pyvips
from PIL import Image

from service.formats import OutputFormat
from service.render import RenderPolicy, RenderRequest, decode_reservation, read_facts
from service.server.state import METRICS, RENDERS

from .conftest import Client, MakeClient
from .test_cache_http import GATE_SECONDS
from .waiting import eventually_async

RED = [255.0, 0.0, 0.0]


def boxed(
    inner: tuple[int, int],
    border: int,
    *,
    colour: list[float],
    around: list[float],
) -> pyvips.Image:
    """An ``inner``-sized box of ``colour`` with ``border`` pixels of ``around``."""
    box = pyvips.Image.black(*inner).new_from_image(colour)
    return box.embed(
        border,
        border,
        inner[0] + 2 * border,
        inner[1] + 2 * border,
        extend="background",
        background=around,
    ).copy(interpretation="srgb")


def save(image: pyvips.Image, originals: Path, name: str) -> str:
    image.cast("uchar").pngsave(str(originals / name))
    return name


async def fetch(client: Client, target: str, *, pages: int = 1) -> pyvips.Image:
    response = await client.get(target)
    assert response.status == 200, await response.text()
    options = f"n={pages}" if pages != 1 else ""
    return pyvips.Image.new_from_buffer(await response.read(), options, access="random")


def colours(image: pyvips.Image) -> set[tuple[float, ...]]:
    """The distinct pixel values of a small image."""
    return {tuple(image.getpoint(x, y)) for x in range(image.width) for y in range(image.height)}


async def test_trim_removes_exactly_a_uniform_border(client: Client, originals: Path) -> None:
    """A 10-px white border around a 50x30 red box: 50x30 of red."""
    name = save(boxed((50, 30), 10, colour=RED, around=[255, 255, 255]), originals, "boxed.png")
    trimmed = await fetch(client, f"/picture/{name}?trim=10&format=png")
    assert (trimmed.width, trimmed.height) == (50, 30)
    assert colours(trimmed) == {tuple(RED)}


async def test_the_border_colour_is_the_top_left_pixels(client: Client, originals: Path) -> None:
    """A grey border is trimmed too (libvips' find_trim alone assumes white)."""
    image = boxed((20, 40), 7, colour=[0, 0, 255], around=[128, 128, 128])
    name = save(image, originals, "grey-border.png")
    trimmed = await fetch(client, f"/picture/{name}?trim=5&format=png")
    assert (trimmed.width, trimmed.height) == (20, 40)
    assert colours(trimmed) == {(0.0, 0.0, 255.0)}


async def test_trim_threshold_matters(client: Client, originals: Path) -> None:
    """A ring 10 levels off the border colour is border at trim=10 (a
    difference of more than T is content) and content at trim=9."""
    ring = boxed((30, 20), 5, colour=RED, around=[245, 245, 245])
    image = ring.embed(8, 8, ring.width + 16, ring.height + 16, extend="white")
    name = save(image, originals, "ring.png")
    loose = await fetch(client, f"/picture/{name}?trim=10&format=png")
    assert (loose.width, loose.height) == (30, 20)
    strict = await fetch(client, f"/picture/{name}?trim=9&format=png")
    assert (strict.width, strict.height) == (40, 30)


async def test_a_uniform_image_keeps_its_size(client: Client, originals: Path) -> None:
    """Trimmed to nothing, an image is kept whole."""
    name = save(pyvips.Image.black(40, 24).new_from_image([90, 90, 90]), originals, "flat.png")
    kept = await fetch(client, f"/picture/{name}?trim=10&format=png")
    assert (kept.width, kept.height) == (40, 24)


async def test_a_transparent_border_is_trimmed(client: Client, originals: Path) -> None:
    """Transparent pixels are border whatever colour they hide."""
    noise = pyvips.Image.gaussnoise(60, 60, sigma=80, mean=128)
    bands: list[pyvips.Image | int | float] = [noise.fliphor(), noise.flipver(), 0]
    hidden = noise.bandjoin(bands).cast("uchar")
    square = pyvips.Image.black(20, 30).new_from_image([0, 200, 0, 255])
    image = hidden.insert(square, 15, 12).copy(interpretation="srgb")
    name = save(image, originals, "cut-out.png")
    trimmed = await fetch(client, f"/picture/{name}?trim=10&format=png")
    assert (trimmed.width, trimmed.height) == (20, 30)
    assert colours(trimmed) == {(0.0, 200.0, 0.0, 255.0)}


async def test_trim_comes_before_the_resize(client: Client, originals: Path) -> None:
    """The size asked for applies to the trimmed image."""
    name = save(boxed((80, 40), 20, colour=RED, around=[255, 255, 255]), originals, "wide.png")
    resized = await fetch(client, f"/picture/{name}?trim=10&w=40&format=png")
    assert (resized.width, resized.height) == (40, 20)
    padded = await fetch(client, f"/picture/{name}?trim=10&w=40&h=40&fit=pad&format=png")
    assert (padded.width, padded.height) == (40, 40)
    assert padded.getpoint(20, 20)[:3] == RED
    assert padded.getpoint(20, 2)[:3] == [255.0, 255.0, 255.0]  # bg, not the border


async def test_trim_sees_the_upright_original(client: Client, originals: Path) -> None:
    """Stored sideways with EXIF orientation 6: trimmed and served upright,
    its left half red and its right half blue."""
    halves = (
        pyvips.Image.black(30, 20)
        .new_from_image(RED)
        .join(pyvips.Image.black(30, 20).new_from_image([0, 0, 255]), "horizontal")
    )
    upright = halves.embed(6, 6, 72, 32, extend="white").copy(interpretation="srgb")
    stored = upright.rot270().copy()  # orientation 6 turns it back clockwise
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    stored.cast("uchar").jpegsave(str(originals / "sideways.jpg"), Q=100)
    trimmed = await fetch(client, "/picture/sideways.jpg?trim=40&format=png")
    assert (trimmed.width, trimmed.height) == (60, 20)
    left, right = trimmed.getpoint(10, 10), trimmed.getpoint(50, 10)
    assert left[0] > 200 > left[2]
    assert right[2] > 200 > right[0]


async def test_trim_looks_inside_the_crop(client: Client, originals: Path) -> None:
    """After crop=: the border is the crop's, not the original's."""
    image = boxed((50, 30), 10, colour=RED, around=[255, 255, 255])
    image = image.insert(pyvips.Image.black(20, 20).new_from_image([0, 0, 255]), 0, 0)
    name = save(image, originals, "corner.png")
    trimmed = await fetch(client, f"/picture/{name}?crop=25,5,45,45&trim=10&format=png")
    assert (trimmed.width, trimmed.height) == (35, 30)  # the red box, from x=25 to 60
    assert colours(trimmed) == {tuple(RED)}


@pytest.fixture
def moving_gif(originals: Path) -> str:
    """Three 60x40 frames on white: a 20x10 black box at (10, 5) in the
    first, then a 30x25 box at (25, 10), blue in the second, green in the
    third."""
    frames = []
    for colour in ((0, 0, 0), (0, 0, 255), (0, 160, 0)):
        frame = Image.new("RGB", (60, 40), (255, 255, 255))
        if colour == (0, 0, 0):
            frame.paste(colour, (10, 5, 30, 15))
        else:
            frame.paste(colour, (25, 10, 55, 35))
        frames.append(frame)
    path = originals / "moving.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path.name


async def test_an_animation_trims_every_frame_to_the_first_frames_box(
    client: Client, moving_gif: str
) -> None:
    """Every frame is cut to the first frame's box, (10, 5) to (30, 15), so
    the animation does not jump: the later frames show what lies in that
    box (white, and their box's corner from (25, 10))."""
    strip = await fetch(client, f"/picture/{moving_gif}?trim=10&format=gif", pages=-1)
    assert strip.get("n-pages") == 3
    assert (strip.width, strip.get("page-height")) == (20, 10)
    first = strip.crop(0, 0, 20, 10)
    assert colours(first.extract_band(0, n=3)) == {(0.0, 0.0, 0.0)}
    for top, colour in ((10, [0.0, 0.0, 255.0]), (20, [0.0, 160.0, 0.0])):
        later = strip.crop(0, top, 20, 10)
        assert later.getpoint(17, 8)[:3] == colour  # (27, 13): in their box
        assert later.getpoint(2, 2)[:3] == [255.0, 255.0, 255.0]


# -- its memory: a whole-image decode ---------------------------------------

POLICY = RenderPolicy(
    quality={OutputFormat.JPEG: 80},
    max_output_size=4096,
    max_source_pixels=10**8,
    avif_effort=0,
    max_decode_bytes=10**9,
)


def request(*, trim: int | None = None, format: OutputFormat | None = None) -> RenderRequest:
    return RenderRequest(
        width=300, height=None, format=format, background=(255, 255, 255, 255), trim=trim
    )


@pytest.fixture
def large_png(originals: Path) -> Path:
    """A 2400x1600 PNG: it streams (the decoder holds a few lines)."""
    image = pyvips.Image.gaussnoise(2400, 1600, sigma=40, mean=128).cast("uchar")
    bands: list[pyvips.Image | int | float] = [image, image]
    image.bandjoin(bands).copy(interpretation="srgb").pngsave(
        str(originals / "large.png"), compression=1
    )
    return originals / "large.png"


def test_trim_reserves_the_whole_decoded_image(large_png: Path) -> None:
    """A streaming PNG reserves nothing, but trimmed it reserves its whole
    decode: 2400 x 1600 pixels of 3 bytes."""
    with large_png.open("rb") as file:
        facts = read_facts(file.fileno(), allow_svg=False)
    assert decode_reservation(facts, POLICY, request()) == 0
    assert decode_reservation(facts, POLICY, request(trim=10)) == 2400 * 1600 * 3


def test_trim_of_an_animation_reserves_every_frame_it_keeps(originals: Path) -> None:
    """Trim keeps each frame rendered, on top of the GIF decoder's canvas;
    a still output of the same GIF keeps one."""
    path = originals / "gif_animated_5f.gif"
    with path.open("rb") as file:
        facts = read_facts(file.fileno(), allow_svg=False)
    canvas = facts.width * facts.height
    animated = request(trim=10, format=OutputFormat.GIF)
    assert decode_reservation(facts, POLICY, animated) == facts.decode_bytes + canvas * 4 * 5
    still = request(trim=10, format=OutputFormat.PNG)
    assert decode_reservation(facts, POLICY, still) == facts.decode_bytes + canvas * 4


def reserved_bytes(client: Client) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "image_factory_decode_budget_reserved_bytes"
    )
    assert value is not None
    return value


async def test_the_decode_budget_counts_trim(large_png: Path, make_client: MakeClient) -> None:
    """While a trim of a large PNG renders, the budget holds its whole
    decode; a plain render of it holds nothing."""
    client = await make_client()
    gate, held = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        gate.wait(GATE_SECONDS)

    client.app[RENDERS].before_render = hold
    trimmed = asyncio.ensure_future(client.get("/picture/large.png?trim=10&w=300"))
    await eventually_async(held.is_set, GATE_SECONDS, message="the render never started")
    assert reserved_bytes(client) == 2400 * 1600 * 3
    gate.set()
    assert (await trimmed).status == 200
    assert reserved_bytes(client) == 0
    client.app[RENDERS].before_render = None
    assert (await client.get("/picture/large.png?w=300")).status == 200
    assert reserved_bytes(client) == 0


async def test_max_decode_bytes_refuses_a_trim_it_would_not_hold(
    large_png: Path, make_client: MakeClient
) -> None:
    """--max-decode-bytes under the whole image: the trim is a 422 from the
    header, and the plain render of the same PNG still streams."""
    client = await make_client(max_decode_bytes=2400 * 1600 * 3 - 1)
    refused = await client.get("/picture/large.png?trim=10&w=300")
    assert refused.status == 422
    assert "to decode" in (await refused.json())["error"]
    assert (await client.get("/picture/large.png?w=300")).status == 200


async def test_trim_comes_before_rotate_and_a_focal_point(client: Client, originals: Path) -> None:
    """trim, then rotate=90 turns the trimmed box, and fp places cover within it."""
    name = save(boxed((50, 30), 10, colour=RED, around=[255.0, 255.0, 255.0]), originals, "t.png")
    turned = await fetch(client, f"/picture/{name}?trim=10&rotate=90&format=png")
    assert (turned.width, turned.height) == (30, 50)
    assert colours(turned) == {(255.0, 0.0, 0.0)}
    covered = await fetch(client, f"/picture/{name}?trim=10&w=20&h=20&fit=cover&fp=1,1&format=png")
    assert (covered.width, covered.height) == (20, 20)
    assert colours(covered) == {(255.0, 0.0, 0.0)}
