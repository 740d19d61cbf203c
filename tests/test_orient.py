"""rotate=90|180|270 (clockwise, after EXIF orientation) and flip=h|v|hv (after rotate)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pyvips
from PIL import Image, ImageChops, ImageOps, ImageStat

from service.render.frames import per_frame, with_page_height
from service.render.orient import turned_strip
from service.spec import Flip

from .conftest import CORPUS, Client, decode

RED, BLUE, GREEN, YELLOW = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0)
# As in test_orientation: JPEG noise between two renders of one scene is
# ~1-3 per channel, a wrong turn or mirror of these photos > 30.
TOLERANCE = 8.0


def pixels(path: Path, rows: list[list[tuple[int, int, int]]]) -> Image.Image:
    image = Image.new("RGB", (len(rows[0]), len(rows)))
    image.putdata([pixel for row in rows for pixel in row])
    image.save(path)
    return image


async def render_png(client: Client, query: str) -> Image.Image:
    response = await client.get(f"/picture/{query}&format=png")
    assert response.status == 200, await response.text()
    return decode(await response.read()).convert("RGB")


def rows_of(image: Image.Image) -> list[list[object]]:
    return [[image.getpixel((x, y)) for x in range(image.width)] for y in range(image.height)]


@pytest.mark.parametrize(
    ("rotate", "expected"),
    [
        (90, [[RED], [BLUE]]),  # clockwise: the left end goes to the top
        (180, [[BLUE, RED]]),
        (270, [[BLUE], [RED]]),
    ],
)
async def test_rotate_turns_clockwise(
    client: Client, originals: Path, rotate: int, expected: list[list[tuple[int, int, int]]]
) -> None:
    """A 2x1 image, red then blue: each corner lands where a clockwise turn puts it."""
    pixels(originals / "pair.png", [[RED, BLUE]])
    assert rows_of(await render_png(client, f"pair.png?rotate={rotate}")) == expected


QUAD = [[RED, GREEN], [BLUE, YELLOW]]


@pytest.mark.parametrize(
    ("flip", "expected"),
    [
        ("h", [[GREEN, RED], [YELLOW, BLUE]]),
        ("v", [[BLUE, YELLOW], [RED, GREEN]]),
        ("hv", [[YELLOW, BLUE], [GREEN, RED]]),
    ],
)
async def test_flip_mirrors(
    client: Client, originals: Path, flip: str, expected: list[list[tuple[int, int, int]]]
) -> None:
    pixels(originals / "quad.png", QUAD)
    assert rows_of(await render_png(client, f"quad.png?flip={flip}")) == expected


async def test_flip_comes_after_rotate(client: Client, originals: Path) -> None:
    """rotate=90 then flip=h is the transpose (a mirror on the diagonal):
    flipping first would give the anti-transpose."""
    pixels(originals / "quad.png", QUAD)
    image = await render_png(client, "quad.png?rotate=90&flip=h")
    assert rows_of(image) == [[RED, BLUE], [GREEN, YELLOW]]


async def test_rotate_and_flip_are_exact_on_a_larger_image(client: Client, originals: Path) -> None:
    """Pixel for pixel what Pillow's transpose gives, with a resize that
    changes nothing (the original's own size)."""
    source = Image.effect_mandelbrot((64, 48), (-2, -1, 1, 1), 40).convert("RGB")
    source.save(originals / "fractal.png")
    image = await render_png(client, "fractal.png?rotate=270&flip=v&w=48")
    expected = source.transpose(Image.Transpose.ROTATE_90).transpose(
        Image.Transpose.FLIP_TOP_BOTTOM
    )
    assert image.tobytes() == expected.tobytes()


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


# Pillow's transposes for a clockwise turn (its ROTATE_n turn anticlockwise).
CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
ORIENTED = [f"exif_{kind}_{n}.jpg" for kind in ("landscape", "portrait") for n in range(1, 9)] + [
    "jpeg_progressive_orient6.jpg",
    "webp_exif_orient6.webp",
    "tiff_g4_orient6.tif",
    "jpeg_2x1_orient8.jpg",
]


@pytest.mark.parametrize("rotate", [90, 180, 270])
@pytest.mark.parametrize("name", ORIENTED)
async def test_rotate_turns_the_upright_picture(client: Client, name: str, rotate: int) -> None:
    """For every EXIF orientation: rotate=N is the upright render turned by
    N (sizes swapped for a quarter turn), and matches Pillow turning its
    own upright decode."""
    upright_query = "h=200" if rotate % 180 else "w=200"
    upright = await render_png(client, f"{name}?{upright_query}")
    turned = await render_png(client, f"{name}?w=200&rotate={rotate}")
    assert turned.tobytes() == upright.transpose(CLOCKWISE[rotate]).tobytes()
    pillow = ImageOps.exif_transpose(Image.open(CORPUS / name)).convert("RGB")
    pillow = pillow.transpose(CLOCKWISE[rotate]).resize(turned.size, Image.Resampling.LANCZOS)
    assert mean_difference(turned, pillow) < TOLERANCE


async def test_the_rotate_check_tells_the_wrong_turn(client: Client) -> None:
    """The tolerance is meaningful: a photo turned the other way is far off."""
    turned = await render_png(client, "exif_landscape_6.jpg?w=200&rotate=90")
    wrong = ImageOps.exif_transpose(Image.open(CORPUS / "exif_landscape_6.jpg")).convert("RGB")
    wrong = wrong.transpose(CLOCKWISE[270]).resize(turned.size, Image.Resampling.LANCZOS)
    assert mean_difference(turned, wrong) > 4 * TOLERANCE


@pytest.mark.parametrize(
    ("gravity", "rows"),
    [("north", (0, 100)), ("south", (800, 900))],
)
async def test_cover_gravity_names_an_edge_of_the_turned_picture(
    client: Client, gravity: str, rows: tuple[int, int]
) -> None:
    """With rotate=90 the box and gravity are the output's: north keeps the
    top of the turned picture (the original's left side)."""
    turned = await render_png(client, "exif_landscape_1.jpg?h=900&rotate=90")  # 600x900
    image = await render_png(
        client, f"exif_landscape_1.jpg?w=600&h=100&fit=cover&gravity={gravity}&rotate=90"
    )
    assert image.size == (600, 100)
    assert mean_difference(image, turned.crop((0, rows[0], 600, rows[1]))) < TOLERANCE
    other = (900 - rows[1], 900 - rows[0])
    assert mean_difference(image, turned.crop((0, other[0], 600, other[1]))) > 2 * TOLERANCE


async def test_pad_boxes_the_turned_picture(client: Client) -> None:
    """A landscape turned by 90 is a portrait: padded at its sides, not above."""
    image = await render_png(client, "exif_landscape_1.jpg?w=300&h=300&fit=pad&bg=00ff00&rotate=90")
    assert image.size == (300, 300)
    assert image.getpixel((5, 150)) == (0, 255, 0)  # the band left of the photo
    assert image.getpixel((150, 5)) != (0, 255, 0)


async def test_a_crop_is_taken_before_rotate(client: Client, originals: Path) -> None:
    """The crop is of the upright picture; the turn then applies to it."""
    pixels(originals / "quad.png", QUAD)
    image = await render_png(client, "quad.png?crop=0,0,2,1&rotate=90")
    assert rows_of(image) == [[RED], [GREEN]]


def animation(path: Path, count: int) -> list[tuple[int, int, int]]:
    """A 40x20 GIF: each frame its own colour, with a white 4x4 mark in its
    top-left corner. Returns the colours."""
    colours = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (200, 200, 0), (0, 200, 200)][:count]
    frames = []
    for colour in colours:
        frame = Image.new("RGB", (40, 20), colour)
        frame.paste((255, 255, 255), (0, 0, 4, 4))
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return colours


TURNED_FRAMES = [
    ("rotate=90", (20, 40), (18, 1)),  # the top-left corner turns to the top right
    ("rotate=180", (40, 20), (38, 18)),
    ("flip=h", (40, 20), (38, 1)),
    ("flip=v", (40, 20), (1, 18)),
    ("rotate=270&flip=hv", (20, 40), (18, 1)),
    ("crop=0,0,20,20&rotate=90", (20, 20), (18, 1)),
]


@pytest.mark.parametrize("case", TURNED_FRAMES, ids=[query for query, _, _ in TURNED_FRAMES])
@pytest.mark.parametrize("output", ["gif", "webp"])
async def test_every_frame_of_an_animation_is_turned(
    client: Client,
    originals: Path,
    output: str,
    case: tuple[str, tuple[int, int], tuple[int, int]],
) -> None:
    """The frame count is kept; in every frame the corner mark moves where
    the turn puts it and the frame keeps its colour."""
    query, size, mark = case
    colours = animation(originals / "marked.gif", 5)
    response = await client.get(f"/picture/marked.gif?{query}&format={output}")
    assert response.status == 200, await response.text()
    shown = Image.open(io.BytesIO(await response.read()))
    assert getattr(shown, "n_frames", 1) == len(colours)
    for index, colour in enumerate(colours):
        shown.seek(index)
        frame = shown.convert("RGB")
        assert frame.size == size
        assert _close(frame.getpixel(mark), (255, 255, 255))
        assert _close(frame.getpixel((size[0] // 2, size[1] // 2)), colour)


def _close(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    distance: int = max(abs(a - b) for a, b in zip(pixel, colour, strict=True))
    return distance <= 32  # lossy WebP blurs a 4 px mark a little


def _each_frame_alone(frame: pyvips.Image, rotate: int, flip: Flip) -> pyvips.Image:
    if rotate:
        frame = frame.rot(f"d{rotate}")
    if flip in (Flip.VERTICAL, Flip.BOTH):
        frame = frame.flipver()
    if flip in (Flip.HORIZONTAL, Flip.BOTH):
        frame = frame.fliphor()
    return frame


@pytest.mark.parametrize("flip", list(Flip), ids=[flip.name for flip in Flip])
@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_a_turned_strip_is_each_frame_turned_alone(rotate: int, flip: Flip) -> None:
    """An animation strip turned as a whole (a row of frames turned once)
    has exactly the pixels of each frame turned on its own, in frame
    order, and the turned frame's page height."""
    frames, width, height = 4, 5, 3
    ramp = pyvips.Image.xyz(width, height * frames)
    values = (ramp[0] * 7 + ramp[1] * 31) % 256
    bands: list[pyvips.Image | int | float] = [values.invert(), values // 3]
    strip = with_page_height(values.bandjoin(bands).cast("uchar"), height)
    expected = per_frame(strip, frames, lambda frame: _each_frame_alone(frame, rotate, flip))
    turned = turned_strip(strip, frames, rotate, flip)
    assert (turned.width, turned.height) == (expected.width, expected.height)
    assert turned.get("page-height") == expected.get("page-height")
    assert (turned - expected).abs().max() == 0
