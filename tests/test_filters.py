"""blur and sharpen, through the real server: pixels, not just sizes.

High-frequency energy is the mean absolute Laplacian of the lightness; each
test compares a filtered render with the plain render of the same request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips
from PIL import Image

from service.render import STEPS
from service.render.blur import blur, gaussian
from service.render.colour import to_srgb
from service.render.pad import pad
from service.render.sharpen import sharpen

from .conftest import Client

LAPLACIAN = pyvips.Image.new_from_array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])


def energy(image: pyvips.Image) -> float:
    """Mean absolute Laplacian of the lightness (alpha left out)."""
    colour = image.extract_band(0, n=image.bands - 1) if image.hasalpha() else image
    lightness = colour if colour.bands == 1 else colour.colourspace("b-w")
    return float(lightness.cast("float").conv(LAPLACIAN, precision="float").abs().avg())


async def fetch(client: Client, target: str, *, pages: int = 1) -> pyvips.Image:
    """The image answered to ``target`` (``pages=-1``: every frame, stacked)."""
    response = await client.get(target)
    assert response.status == 200, await response.text()
    options = f"n={pages}" if pages != 1 else ""
    return pyvips.Image.new_from_buffer(await response.read(), options, access="random")


def lowest(image: pyvips.Image) -> float:
    value = image.min()
    assert isinstance(value, float)
    return value


def highest(image: pyvips.Image) -> float:
    value = image.max()
    assert isinstance(value, float)
    return value


def frames_of(strip: pyvips.Image) -> list[pyvips.Image]:
    """The frames of an animation strip, top to bottom."""
    height = strip.get("page-height")
    assert isinstance(height, int)
    return [strip.crop(0, top, strip.width, height) for top in range(0, strip.height, height)]


def mean_difference(first: pyvips.Image, second: pyvips.Image) -> float:
    return float((first.cast("float") - second.cast("float")).abs().avg())


@pytest.fixture
def noise(originals: Path) -> str:
    """A 600x400 photo-like PNG: smooth gradients under grain."""
    grain = pyvips.Image.gaussnoise(600, 400, sigma=30, mean=128)
    ramp = pyvips.Image.xyz(600, 400)[0] / 600 * 80
    grey = (grain + ramp).cast("uchar")
    others: list[pyvips.Image | int | float] = [grey.flipver(), grey.fliphor()]
    photo = grey.bandjoin(others).copy(interpretation="srgb")
    photo.pngsave(str(originals / "noise.png"))
    return "noise.png"


@pytest.fixture
def soft(originals: Path) -> str:
    """A soft 600x400 PNG: squares blurred with sigma 3 (detail to sharpen)."""
    squares = pyvips.Image.xyz(600, 400)
    checker = ((squares[0] / 40).floor() + (squares[1] / 40).floor()) % 2 * 120 + 60
    soft = checker.gaussblur(3).cast("uchar")
    others: list[pyvips.Image | int | float] = [soft, soft.invert()]
    soft.bandjoin(others).copy(interpretation="srgb").pngsave(str(originals / "soft.png"))
    return "soft.png"


def test_filters_run_on_the_output_in_the_issues_order() -> None:
    """colour, then blur, then sharpen, then pad: on 8-bit output pixels,
    sharpen after blur when both are given."""
    order = [STEPS.index(step) for step in (to_srgb, blur, sharpen, pad)]
    assert order == sorted(order)


async def test_blur_lowers_high_frequency_energy(client: Client, noise: str) -> None:
    plain = await fetch(client, f"/picture/{noise}?w=300&format=png")
    blurred = await fetch(client, f"/picture/{noise}?w=300&format=png&blur=2")
    assert (blurred.width, blurred.height) == (plain.width, plain.height)
    assert energy(blurred) < 0.3 * energy(plain)


async def test_sharpen_raises_high_frequency_energy(client: Client, soft: str) -> None:
    plain = await fetch(client, f"/picture/{soft}?w=300&format=png")
    sharpened = await fetch(client, f"/picture/{soft}?w=300&format=png&sharpen=1")
    assert (sharpened.width, sharpened.height) == (plain.width, plain.height)
    assert energy(sharpened) > 1.1 * energy(plain)


async def test_a_stronger_sharpen_raises_it_more(client: Client, soft: str) -> None:
    gentle = await fetch(client, f"/picture/{soft}?w=300&format=png&sharpen=0.5")
    strong = await fetch(client, f"/picture/{soft}?w=300&format=png&sharpen=2")
    assert energy(strong) > energy(gentle)


async def test_blur_sigma_is_in_output_pixels(client: Client, noise: str) -> None:
    """w=100&dpr=2&blur=1 is the 200 px render blurred by 2 output pixels:
    the same size as w=200&blur=2, and close to the plain 200 px render
    blurred by libvips with sigma 2, not 1."""
    retina = await fetch(client, f"/picture/{noise}?w=100&dpr=2&blur=1&format=png")
    wide = await fetch(client, f"/picture/{noise}?w=200&blur=2&format=png")
    assert (retina.width, retina.height) == (wide.width, wide.height) == (200, 133)
    assert mean_difference(retina, wide) < 0.5
    plain = await fetch(client, f"/picture/{noise}?w=200&format=png")
    by_two, by_one = plain.gaussblur(2), plain.gaussblur(1)
    assert mean_difference(retina, by_two) < 0.5
    assert mean_difference(retina, by_one) > 4 * mean_difference(retina, by_two)


@pytest.fixture
def cut_out(originals: Path) -> str:
    """A 60x60 opaque red square in the middle of a 120x120 PNG whose
    transparent pixels are black (as a resize leaves them)."""
    red = pyvips.Image.black(60, 60).new_from_image([220, 30, 30, 255])
    red.embed(30, 30, 120, 120).copy(interpretation="srgb").pngsave(str(originals / "cut.png"))
    return "cut.png"


async def test_blur_with_alpha_has_no_dark_fringe(client: Client, cut_out: str) -> None:
    """Blurred premultiplied: the fading edge keeps the square's colour and
    only its alpha fades (blurred straight, the black of the transparent
    pixels would darken it: a quarter opaque, it would be a quarter red).
    Checked where alpha is at least 64, as 8-bit premultiplied values
    leave the colour of fainter pixels less exact (not their composite)."""
    blurred = await fetch(client, f"/picture/{cut_out}?format=png&blur=4")
    assert blurred.bands == 4
    fading = (blurred[3] >= 64) & (blurred[3] < 255)
    assert fading.avg() > 0
    assert lowest(fading.ifthenelse(blurred[0], 220)) >= 214
    assert highest(fading.ifthenelse(blurred[1], 30)) <= 36
    assert lowest(blurred[3]) == 0  # the fade reaches transparent
    assert 0 < blurred[3].getpoint(31, 60)[0] < 255  # and the edge is soft


async def test_sharpen_leaves_alpha_and_cut_out_edges_alone(client: Client, cut_out: str) -> None:
    """Sharpening a cut-out keeps its alpha as it was, and the transparent
    pixels' colour puts no light rim on the edge of the visible square."""
    plain = await fetch(client, f"/picture/{cut_out}?format=png")
    sharpened = await fetch(client, f"/picture/{cut_out}?format=png&sharpen=2")
    assert mean_difference(sharpened[3], plain[3]) == 0
    on_white = [image.flatten(background=[255, 255, 255]) for image in (sharpened, plain)]
    # A flat square has no detail: no rim (measured against the black of the
    # transparent pixels, the edge would lighten by 26 levels), and at most
    # the convolution's rounding (one level, at the corners).
    assert highest((on_white[0].cast("int") - on_white[1]).abs()) <= 1


async def test_sharpen_keeps_grey_one_band(client: Client) -> None:
    """A grey original sharpened is still one band of 8 bits."""
    sharpened = await fetch(client, "/picture/camera.png?w=200&sharpen=1")
    assert (sharpened.bands, sharpened.format) == (1, "uchar")
    plain = await fetch(client, "/picture/camera.png?w=200")
    assert energy(sharpened) > energy(plain)


@pytest.fixture
def striped_gif(originals: Path) -> str:
    """Four 80x80 frames: fine stripes, each frame half black, half white
    from top to bottom in turn (so a blur across frames would show)."""
    frames = []
    for index in range(4):
        frame = Image.new("L", (80, 80), 0 if index % 2 else 255)
        for x in range(0, 80, 4):
            for y in range(80):
                frame.putpixel((x, y), 255 if index % 2 else 0)
        frames.append(frame.convert("RGB"))
    path = originals / "stripes.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path.name


async def test_an_animation_keeps_its_frames_and_every_frame_is_blurred(
    client: Client, striped_gif: str
) -> None:
    plain = await fetch(client, f"/picture/{striped_gif}?format=webp&q=100", pages=-1)
    blurred = await fetch(client, f"/picture/{striped_gif}?format=webp&q=100&blur=2", pages=-1)
    assert len(frames_of(blurred)) == len(frames_of(plain)) == 4
    for index, (frame, before) in enumerate(zip(frames_of(blurred), frames_of(plain), strict=True)):
        assert energy(frame) < 0.5 * energy(before), index


async def test_a_blur_does_not_bleed_between_frames(client: Client, striped_gif: str) -> None:
    """Each frame is blurred alone: the last rows of a mostly white frame
    stay as bright as its middle rows, next to a mostly black frame."""
    blurred = await fetch(client, f"/picture/{striped_gif}?format=webp&q=100&blur=3", pages=-1)
    white = frames_of(blurred)[0]  # white, with thin black stripes
    middle = white.crop(0, white.height // 2 - 2, white.width, 4).avg()
    last = white.crop(0, white.height - 2, white.width, 2).avg()
    assert abs(last - middle) < 3


@pytest.mark.parametrize("sigma", [28.0, 50.0])
def test_a_wide_blur_matches_the_direct_gaussian(sigma: float) -> None:
    """From sigma 28 the blur runs on a shrunk copy: within 3 levels of libvips' own."""
    noise = pyvips.Image.gaussnoise(600, 400, mean=128, sigma=60).cast("uchar")
    others: list[pyvips.Image | int | float] = [noise.rot180(), noise.flip("horizontal")]
    picture = noise.bandjoin(others).copy(interpretation="srgb")
    direct = picture.gaussblur(sigma)
    ours = gaussian(picture, sigma)
    assert (ours.width, ours.height, ours.bands) == (600, 400, 3)
    difference = (direct.cast("float") - ours.cast("float")).abs().max()
    assert isinstance(difference, float)
    assert difference <= 3, difference
