"""fp=x,y: fit=cover's window centred on a point, as far as the edges allow."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from .conftest import Client, decode

GREY, RED = (128, 128, 128), (255, 0, 0)
SIZE = (600, 200)


def marked(path: Path, centre: tuple[int, int], size: tuple[int, int] = SIZE) -> None:
    """A flat grey picture with one 20x20 red square centred on ``centre``."""
    image = Image.new("RGB", size, GREY)
    x, y = centre
    ImageDraw.Draw(image).rectangle((x - 10, y - 10, x + 9, y + 9), fill=RED)
    image.save(path)


def marker_centre(image: Image.Image) -> tuple[float, float]:
    """The centre of the red pixels."""
    rgb = image.convert("RGB")
    red = [
        (x, y) for y in range(rgb.height) for x in range(rgb.width) if _is_red(rgb.getpixel((x, y)))
    ]
    assert red, "the marker is not in the window"
    return (
        sum(x for x, _ in red) / len(red) + 0.5,
        sum(y for _, y in red) / len(red) + 0.5,
    )


def _is_red(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    return bool(pixel[0] > 200 and pixel[1] < 80 and pixel[2] < 80)


async def render(client: Client, query: str) -> Image.Image:
    response = await client.get(f"/picture/{query}&format=png")
    assert response.status == 200, await response.text()
    return decode(await response.read())


def near(point: tuple[float, float], expected: tuple[float, float], within: float = 1.5) -> bool:
    return abs(point[0] - expected[0]) <= within and abs(point[1] - expected[1]) <= within


@pytest.mark.parametrize("box", [(200, 200), (100, 100)])
async def test_the_window_is_centred_on_the_point(
    client: Client, originals: Path, box: tuple[int, int]
) -> None:
    """A marker at (450, 100) of 600x200, as fp: it lands at the window's
    centre, at full size and shrunk, where gravity=centre cuts it off."""
    marked(originals / "marker.png", (450, 100))
    query = f"marker.png?w={box[0]}&h={box[1]}&fit=cover"
    centred = await render(client, f"{query}&fp=0.75,0.5")
    assert centred.size == box
    assert near(marker_centre(centred), (box[0] / 2, box[1] / 2))
    plain = (await render(client, query)).convert("RGB")
    assert not any(_is_red(pixel) for pixel in plain.get_flattened_data())


async def test_the_window_stops_at_the_edge(client: Client, originals: Path) -> None:
    """A marker near the right edge: the window goes no further than the
    edge, so the marker sits right of centre, as far right as it is in the
    picture."""
    marked(originals / "marker.png", (570, 100))
    image = await render(client, "marker.png?w=200&h=200&fit=cover&fp=0.95,0.5")
    assert near(marker_centre(image), (170, 100))


async def test_the_window_moves_on_both_axes(client: Client, originals: Path) -> None:
    """A tall window over a square picture moves vertically too."""
    marked(originals / "square.png", (150, 60), size=(300, 300))
    image = await render(client, "square.png?w=100&h=300&fit=cover&fp=0.5,0.2")
    assert near(marker_centre(image), (50, 60))  # 300 px high: nothing to move
    image = await render(client, "square.png?w=300&h=100&fit=cover&fp=0.5,0.2")
    assert near(marker_centre(image), (150, 50))


async def test_the_point_is_a_fraction_of_the_crop(client: Client, originals: Path) -> None:
    """With a crop, fp is in the crop's fractions: (400, 100) of the picture
    is (0.6, 0.5) of the crop 100,0,500,200."""
    marked(originals / "marker.png", (400, 100))
    image = await render(client, "marker.png?crop=100,0,500,200&w=100&h=100&fit=cover&fp=0.6,0.5")
    assert near(marker_centre(image), (50, 50))


async def test_the_point_is_taken_before_rotate(client: Client, originals: Path) -> None:
    """fp is of the upright picture, before rotate: a point near its right
    edge ends near the bottom of a picture turned by 90 degrees."""
    marked(originals / "marker.png", (570, 100))
    image = await render(client, "marker.png?w=200&h=200&fit=cover&fp=0.95,0.5&rotate=90")
    assert near(marker_centre(image), (100, 170))


async def test_without_cover_the_point_is_ignored(client: Client, originals: Path) -> None:
    """Like gravity, fp only places cover's window: contain gives the same image."""
    marked(originals / "marker.png", (400, 100))
    plain = await client.get("/picture/marker.png?w=300&h=300&format=png")
    pointed = await client.get("/picture/marker.png?w=300&h=300&fp=0.1,0.1&format=png")
    assert await pointed.read() == await plain.read()
    assert pointed.headers["ETag"] == plain.headers["ETag"]


async def test_every_frame_gets_the_same_window(client: Client, originals: Path) -> None:
    """An animation: each frame's marker (its own colour elsewhere) is at
    the window's centre, and every frame is kept."""
    frames = []
    for shade in (40, 90, 140, 190):
        frame = Image.new("RGB", SIZE, (shade, shade, shade))
        ImageDraw.Draw(frame).rectangle((390, 90, 409, 109), fill=RED)
        frames.append(frame)
    frames[0].save(originals / "moving.gif", save_all=True, append_images=frames[1:], duration=40)
    response = await client.get("/picture/moving.gif?w=100&h=100&fit=cover&fp=0.667,0.5")
    assert response.status == 200
    shown = Image.open(io.BytesIO(await response.read()))
    assert getattr(shown, "n_frames", 1) == len(frames)
    for index in range(len(frames)):
        shown.seek(index)
        assert near(marker_centre(shown.convert("RGB")), (50, 50))
