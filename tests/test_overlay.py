"""Overlays (--overlays, overlay=NAME, --default-overlay): pixels, keys, start-up checks.

Every image here is generated: solid colours, so that each pixel's value
is known; the output is read back with Pillow, not libvips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import pyvips
from PIL import Image, ImageSequence

from service.overlays import OverlayFile, OverlayGravity, load_overlays
from service.render.overlay import MAX_SIZES, OverlayLibrary, placement
from service.settings import Settings, SettingsError

from .conftest import Client, MakeClient, decode
from .hostile import png_bomb

WHITE = (255, 255, 255)
RED = (255, 0, 0)


def solid(path: Path, width: int, height: int, colour: tuple[int, ...]) -> Path:
    """A PNG of one colour (3 values: RGB, 4: RGBA, 1: grey)."""
    image = pyvips.Image.black(width, height, bands=len(colour)).new_from_image(list(colour))
    interpretation = "b-w" if len(colour) == 1 else "srgb"
    image.cast("uchar").copy(interpretation=interpretation).write_to_file(str(path))
    return path


def overlays_file(directory: Path, text: str, *, red: tuple[int, int] = (40, 20)) -> Path:
    """An --overlays TOML in ``directory``, beside a solid red PNG ``red.png``."""
    solid(directory / "red.png", *red, RED)
    toml = directory / "overlays.toml"
    toml.write_text(text)
    return toml


RED_SE = """
[red]
image = "red.png"
gravity = "south-east"
margin = 4
opacity = 0.5
width = 0.2
"""

RED_OPAQUE_SW = """
[red]
image = "red.png"
gravity = "south-west"
width = 0.1
"""


@pytest.fixture
def red_se(tmp_path: Path) -> dict[str, OverlayFile]:
    return load_overlays(str(overlays_file(tmp_path, RED_SE)))


async def picture(client: Client, target: str) -> Image.Image:
    response = await client.get(target)
    assert response.status == 200, await response.text()
    return decode(await response.read())


def near(pixel: object, expected: tuple[int, ...], tolerance: int = 1) -> bool:
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return len(values) == len(expected) and all(
        abs(int(a) - b) <= tolerance for a, b in zip(values, expected, strict=True)
    )


async def test_the_overlay_carries_its_colour_at_its_opacity(
    originals: Path, make_client: MakeClient, red_se: dict[str, OverlayFile]
) -> None:
    """Solid red at opacity 0.5 over white is (255, 128, 128) where it lies."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=red_se)
    image = await picture(client, "/picture/white.png?overlay=red&format=png")
    assert image.mode == "RGB"
    assert near(image.getpixel((176, 86)), (255, 128, 128))


async def test_pixels_outside_the_overlay_are_untouched(
    originals: Path, make_client: MakeClient, red_se: dict[str, OverlayFile]
) -> None:
    """Every pixel outside the overlay's rectangle is the canvas's own."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=red_se)
    image = await picture(client, "/picture/white.png?overlay=red&format=png")
    inside = {(x, y) for x in range(156, 196) for y in range(76, 96)}
    outside = [(x, y) for x in range(200) for y in range(100) if (x, y) not in inside]
    assert all(image.getpixel(spot) == WHITE for spot in outside)
    assert all(near(image.getpixel(spot), (255, 128, 128)) for spot in inside)


async def test_width_is_a_fraction_of_the_output_and_margin_is_kept(
    originals: Path, make_client: MakeClient, red_se: dict[str, OverlayFile]
) -> None:
    """At w=100 the 0.2-wide overlay is 20x10, 4 px from the bottom-right edges."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=red_se)
    image = await picture(client, "/picture/white.png?w=100&overlay=red&format=png")
    assert image.size == (100, 50)
    assert near(image.getpixel((76, 36)), (255, 128, 128))  # its top-left pixel
    assert near(image.getpixel((95, 45)), (255, 128, 128))  # its bottom-right pixel
    for spot in ((75, 36), (76, 35), (96, 45), (95, 46), (99, 49)):
        assert image.getpixel(spot) == WHITE, spot


async def test_on_a_pad_canvas_it_lands_inside_the_delivered_image(
    originals: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    """fit=pad: the overlay is placed on the padded box, not on the image in it."""
    solid(originals / "white.png", 400, 400, WHITE)  # contained: 100x100 in the box
    overlays = load_overlays(str(overlays_file(tmp_path, RED_OPAQUE_SW)))
    client = await make_client(overlays=overlays)
    image = await picture(
        client, "/picture/white.png?w=200&h=100&fit=pad&bg=000000&overlay=red&format=png"
    )
    assert image.size == (200, 100)
    assert image.getpixel((0, 99)) == RED  # the box's corner, in the black padding
    assert image.getpixel((19, 90)) == RED
    assert image.getpixel((20, 99)) == (0, 0, 0)
    assert image.getpixel((100, 50)) == WHITE


async def test_a_grey_output_stays_grey(
    originals: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    """A grey original keeps one band; the red overlay is made grey on it."""
    solid(originals / "grey.png", 200, 100, (255,))
    overlays = load_overlays(str(overlays_file(tmp_path, RED_OPAQUE_SW)))
    client = await make_client(overlays=overlays)
    image = await picture(client, "/picture/grey.png?overlay=red&format=png")
    assert image.mode == "L"
    # Red's luminance in linear light (0.2126), gamma-encoded again: 127.
    assert near(image.getpixel((0, 99)), (127,), tolerance=2)
    assert image.getpixel((30, 50)) == 255


async def test_over_a_transparent_canvas_its_alpha_is_its_opacity(
    originals: Path, make_client: MakeClient, red_se: dict[str, OverlayFile]
) -> None:
    """Alpha composited, not painted: red at 0.5 over transparency is red at alpha 128."""
    solid(originals / "clear.png", 200, 100, (0, 0, 0, 0))
    client = await make_client(overlays=red_se)
    image = await picture(client, "/picture/clear.png?overlay=red&format=png")
    assert image.mode == "RGBA"
    assert near(image.getpixel((176, 86)), (255, 0, 0, 128))
    assert image.getpixel((10, 10)) == (0, 0, 0, 0)


async def test_a_jpeg_of_a_transparent_original_flattens_the_overlay_too(
    originals: Path, make_client: MakeClient, red_se: dict[str, OverlayFile]
) -> None:
    """Overlay before flatten: over a transparent canvas, then onto bg (white)."""
    solid(originals / "clear.png", 200, 100, (0, 0, 0, 0))
    client = await make_client(overlays=red_se)
    image = await picture(client, "/picture/clear.png?overlay=red&format=jpeg&q=100")
    assert near(image.getpixel((176, 86)), (255, 128, 128), tolerance=4)


def animated_gif(path: Path, colours: list[tuple[int, int, int]], size: int = 60) -> Path:
    frames = [
        pyvips.Image.black(size, size, bands=3).new_from_image(list(colour)) for colour in colours
    ]
    strip = pyvips.Image.arrayjoin(frames, across=1).cast("uchar").copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", size)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * len(colours))
    strip.write_to_file(str(path))
    return path


@pytest.mark.parametrize("fmt", ["gif", "webp"])
async def test_every_frame_of_an_animation_carries_it(
    originals: Path, make_client: MakeClient, tmp_path: Path, fmt: str
) -> None:
    """Animated GIF and WebP outputs: the frame count is kept, and every
    frame has the overlay at the same place and its own colour elsewhere."""
    colours = [(0, 0, 255), (0, 255, 0), (255, 255, 0), (0, 0, 0)]
    animated_gif(originals / "frames.gif", colours)
    half = RED_OPAQUE_SW.replace("width = 0.1", "width = 0.5")  # 30x15: WebP keeps its colour
    overlays = load_overlays(str(overlays_file(tmp_path, half)))
    client = await make_client(overlays=overlays)
    image = await picture(client, f"/picture/frames.gif?overlay=red&format={fmt}&q=100")
    plain = await picture(client, f"/picture/frames.gif?format={fmt}&q=100")
    assert _durations(image) == _durations(plain)  # the timing kept too
    frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    assert len(frames) == len(colours)
    for frame, colour in zip(frames, colours, strict=True):
        assert frame.size == (60, 60)
        assert near(frame.getpixel((10, 52)), RED, tolerance=12)
        assert near(frame.getpixel((45, 15)), colour, tolerance=12)


def _durations(image: Image.Image) -> list[object]:
    return [frame.info.get("duration") for frame in ImageSequence.Iterator(image)]


def test_an_overlay_is_never_larger_than_the_canvas_less_its_margins() -> None:
    """width=1 with margin 10 on a 100x50 canvas: 80 wide, or less to fit 30 high."""
    wide = _overlay(width=1.0, margin=10, gravity=OverlayGravity.CENTRE)
    assert placement((100, 50), (40, 10), wide) == _spot(10, 15, 80, 20)
    assert placement((100, 50), (10, 10), wide) == _spot(35, 10, 30, 30)


def test_on_a_canvas_too_small_for_its_margins_they_shrink() -> None:
    """A 3x3 output with margin 8: the overlay still takes a pixel, in the corner rule."""
    small = _overlay(width=0.5, margin=8, gravity=OverlayGravity.NORTH_WEST)
    spot = placement((3, 3), (40, 20), small)
    assert spot.width >= 1
    assert spot.height >= 1
    assert spot.left + spot.width <= 3
    assert spot.top + spot.height <= 3


@pytest.mark.parametrize(
    ("gravity", "left", "top"),
    [
        (OverlayGravity.NORTH_WEST, 4, 4),
        (OverlayGravity.NORTH, 40, 4),
        (OverlayGravity.NORTH_EAST, 76, 4),
        (OverlayGravity.WEST, 4, 20),
        (OverlayGravity.CENTRE, 40, 20),
        (OverlayGravity.EAST, 76, 20),
        (OverlayGravity.SOUTH_WEST, 4, 36),
        (OverlayGravity.SOUTH, 40, 36),
        (OverlayGravity.SOUTH_EAST, 76, 36),
    ],
)
def test_gravity_places_the_overlay_at_its_side_or_corner(
    gravity: OverlayGravity, left: int, top: int
) -> None:
    """Each of the nine gravities, with a 4-px margin, on a 100x50 canvas."""
    spot = placement((100, 50), (40, 20), _overlay(width=0.2, margin=4, gravity=gravity))
    assert spot == _spot(left, top, 20, 10)


def _overlay(*, width: float, margin: int, gravity: OverlayGravity) -> OverlayFile:
    return OverlayFile(
        name="x",
        path="/x.png",
        gravity=gravity,
        margin=margin,
        opacity=1.0,
        width=width,
        data=b"",
        digest="0" * 64,
    )


def _spot(left: int, top: int, width: int, height: int) -> object:
    from service.render.overlay import Placement  # noqa: PLC0415

    return Placement(left, top, width, height)


TWO_OVERLAYS = """
[red]
image = "red.png"
gravity = "south-west"
width = 0.1

[blue]
image = "blue.png"
gravity = "north-east"
width = 0.1
"""


@pytest.fixture
def two_overlays(tmp_path: Path) -> dict[str, OverlayFile]:
    solid(tmp_path / "blue.png", 40, 20, (0, 0, 255))
    return load_overlays(str(overlays_file(tmp_path, TWO_OVERLAYS)))


async def test_the_default_overlay_is_on_a_request_that_names_none(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile]
) -> None:
    """--default-overlay: a plain request carries it."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=two_overlays, default_overlay="red")
    image = await picture(client, "/picture/white.png?format=png")
    assert image.getpixel((0, 99)) == RED
    assert image.getpixel((199, 0)) == WHITE


async def test_a_preset_may_name_another_overlay_than_the_default(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile]
) -> None:
    """A preset's overlay replaces the default (and only a preset's does)."""
    solid(originals / "white.png", 200, 100, WHITE)
    presets = {"branded": (("w", "200"), ("overlay", "blue"))}
    client = await make_client(overlays=two_overlays, default_overlay="red", presets=presets)
    image = await picture(client, "/picture/white.png?preset=branded&format=png")
    assert image.getpixel((199, 0)) == (0, 0, 255)
    assert image.getpixel((0, 99)) == WHITE


@pytest.mark.parametrize("query", ["overlay=blue", "overlay=none", "overlay=red", "overlay="])
async def test_a_request_cannot_choose_the_overlay_under_a_default(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile], query: str
) -> None:
    """Under --default-overlay a request's own overlay= is a 400: neither
    another overlay nor "none" (which is no overlay's name anyway)."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=two_overlays, default_overlay="red")
    response = await client.get(f"/picture/white.png?{query}")
    assert response.status == 400
    assert "overlay" in (await response.json())["error"]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif", "auto"])
async def test_no_format_removes_the_default_overlay(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile], fmt: str
) -> None:
    """Whatever the output format, the default overlay is in it."""
    solid(originals / "white.png", 200, 100, WHITE)
    client = await make_client(overlays=two_overlays, default_overlay="red")
    image = await picture(client, f"/picture/white.png?format={fmt}&q=100")
    assert near(image.convert("RGB").getpixel((1, 98)), RED, tolerance=40)
    assert near(image.convert("RGB").getpixel((100, 50)), WHITE, tolerance=8)


async def test_a_preset_without_an_overlay_keeps_the_default(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile]
) -> None:
    """A preset that names no overlay does not remove the default."""
    solid(originals / "white.png", 200, 100, WHITE)
    presets = {"plain": (("w", "100"),)}
    client = await make_client(overlays=two_overlays, default_overlay="red", presets=presets)
    image = await picture(client, "/picture/white.png?preset=plain&format=png")
    assert image.getpixel((0, 49)) == RED


async def test_the_key_changes_when_the_overlay_file_changes(
    originals: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    """Two loads of different files under one name: different ETags for the
    variants that carry the overlay, the same for those that do not."""
    solid(originals / "white.png", 200, 100, WHITE)
    first = load_overlays(str(overlays_file(tmp_path, RED_SE)))
    (tmp_path / "red.png").unlink()
    second = load_overlays(str(overlays_file(tmp_path, RED_SE, red=(40, 21))))
    assert first["red"].digest != second["red"].digest
    etags = []
    for overlays in (first, second):
        client = await make_client(overlays=overlays)
        with_overlay = await client.get("/picture/white.png?overlay=red")
        plain = await client.get("/picture/white.png")
        etags.append((with_overlay.headers["ETag"], plain.headers["ETag"]))
        await client.close()
    assert etags[0][0] != etags[1][0]
    assert etags[0][1] == etags[1][1]


async def test_the_key_changes_with_the_overlays_placement(tmp_path: Path) -> None:
    """Opacity, width, margin and gravity shape the pixels: each is in the key."""
    base = load_overlays(str(overlays_file(tmp_path, RED_SE)))["red"].fingerprint
    for old, new in [
        ("opacity = 0.5", "opacity = 0.6"),
        ("width = 0.2", "width = 0.3"),
        ("margin = 4", "margin = 5"),
        ('"south-east"', '"north-east"'),
    ]:
        changed = overlays_file(tmp_path, RED_SE.replace(old, new))
        assert load_overlays(str(changed))["red"].fingerprint != base, new


async def test_the_default_overlay_is_in_the_key_of_every_output(
    originals: Path, make_client: MakeClient, two_overlays: dict[str, OverlayFile]
) -> None:
    """A plain request's key differs with and without a default overlay."""
    solid(originals / "white.png", 200, 100, WHITE)
    plain = await make_client(overlays=two_overlays)
    forced = await make_client(overlays=two_overlays, default_overlay="red")
    named = await make_client(overlays=two_overlays)
    without = (await plain.get("/picture/white.png")).headers["ETag"]
    with_default = (await forced.get("/picture/white.png")).headers["ETag"]
    with_parameter = (await named.get("/picture/white.png?overlay=red")).headers["ETag"]
    assert without != with_default
    assert with_default == with_parameter  # the same output, the same entry


def test_resized_overlays_are_kept_per_size_and_bounded(
    red_se: dict[str, OverlayFile],
) -> None:
    """One build per size while it is held, and never more than MAX_SIZES held."""
    library = OverlayLibrary(red_se)
    library.mark("red", 20, 10, grey=False, for_alpha=False)
    library.mark("red", 20, 10, grey=False, for_alpha=False)
    assert library.builds == 1
    for width in range(1, MAX_SIZES + 10):
        library.mark("red", width, 1, grey=False, for_alpha=False)
    assert library.sizes == MAX_SIZES


def test_the_library_is_safe_across_render_threads(red_se: dict[str, OverlayFile]) -> None:
    """Threads asking for overlapping sizes at once all get the right size."""
    library = OverlayLibrary(red_se, max_sizes=4)
    failures: list[str] = []

    def ask(offset: int) -> None:
        for width in range(1, 40):
            size = 1 + (width + offset) % 8
            image = library.mark("red", size, size, grey=False, for_alpha=offset % 2 == 1)
            if (image.inverse.width, image.addend.height) != (size, size):
                failures.append(f"{size}: {image.inverse.width}x{image.addend.height}")

    threads = [threading.Thread(target=ask, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert library.sizes <= 4


def _write(directory: Path, name: str, data: bytes) -> None:
    (directory / name).write_bytes(data)


BAD_TOML = {
    "not toml": ("[red\nimage = 1", "not valid TOML"),
    "empty": ("", "defines no overlay"),
    "not a table": ('red = "x"', "must be a table"),
    "unknown key": (RED_SE + "colour = 1\n", "unknown key 'colour'"),
    "no width": ('[red]\nimage = "red.png"\n', "width is required"),
    "no image": ("[red]\nwidth = 0.2\n", "image is required"),
    "bad name": ('["re d"]\nimage = "red.png"\nwidth = 0.2\n', "a name is"),
    "bad gravity": (RED_SE.replace('"south-east"', '"attention"'), "gravity"),
    "gravity not a string": (RED_SE.replace('"south-east"', "3"), "gravity"),
    "negative margin": (RED_SE.replace("margin = 4", "margin = -1"), "margin"),
    "fractional margin": (RED_SE.replace("margin = 4", "margin = 1.5"), "margin"),
    "boolean margin": (RED_SE.replace("margin = 4", "margin = true"), "margin"),
    "opacity over 1": (RED_SE.replace("opacity = 0.5", "opacity = 1.5"), "opacity"),
    "opacity nan": (RED_SE.replace("opacity = 0.5", "opacity = nan"), "opacity"),
    "opacity a string": (RED_SE.replace("opacity = 0.5", 'opacity = "half"'), "opacity"),
    "width zero": (RED_SE.replace("width = 0.2", "width = 0"), "width"),
    "width over 1": (RED_SE.replace("width = 0.2", "width = 1.01"), "width"),
    "width inf": (RED_SE.replace("width = 0.2", "width = inf"), "width"),
    "missing image": (RED_SE.replace("red.png", "missing.png"), "cannot read"),
    "a directory": (RED_SE.replace("red.png", "."), "red"),
    "a device": (RED_SE.replace("red.png", "/dev/zero"), "not a regular file"),
    "an empty file": (RED_SE.replace("red.png", "empty.png"), "empty"),
    "text named png": (RED_SE.replace("red.png", "text.png"), "not an image"),
    "matrix named png": (RED_SE.replace("red.png", "matrix.png"), "not accepted"),
    "an svg": (RED_SE.replace("red.png", "logo.svg"), "not an image"),
    "a png bomb": (RED_SE.replace("red.png", "bomb.png"), "over the limit"),
    "a truncated png": (RED_SE.replace("red.png", "cut.png"), "could not be decoded"),
}


@pytest.fixture
def bad_files(tmp_path: Path) -> Path:
    """Beside the TOML: the hostile and broken images the table names."""
    solid(tmp_path / "red.png", 40, 20, RED)
    _write(tmp_path, "empty.png", b"")
    _write(tmp_path, "text.png", b"this is a text file, not a png\n")
    _write(tmp_path, "matrix.png", b"2 2\n1 2\n3 4\n")
    _write(tmp_path, "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    _write(tmp_path, "bomb.png", png_bomb(65535, 65535))
    noisy = pyvips.Image.gaussnoise(300, 300).cast("uchar")
    whole = noisy.write_to_buffer(".png", compression=0)
    _write(tmp_path, "cut.png", whole[: len(whole) // 2])
    return tmp_path


@pytest.mark.parametrize("case", sorted(BAD_TOML))
def test_a_bad_overlays_file_is_one_line_at_start(bad_files: Path, case: str) -> None:
    """Every bad TOML, key, value or image is a SettingsError naming --overlays, in one line."""
    text, mention = BAD_TOML[case]
    toml = bad_files / "overlays.toml"
    toml.write_text(text)
    with pytest.raises(SettingsError) as caught:
        Settings.from_sources(["--overlays", str(toml)], {})
    message = str(caught.value)
    assert "--overlays" in message
    assert mention in message
    assert "\n" not in message


def test_the_variable_works_as_the_flag_does(bad_files: Path) -> None:
    """IMAGE_FACTORY_OVERLAYS loads the same file; a bad one is refused the same way."""
    toml = bad_files / "overlays.toml"
    toml.write_text(RED_SE)
    settings = Settings.from_sources([], {"IMAGE_FACTORY_OVERLAYS": str(toml)})
    assert set(settings.overlays) == {"red"}
    toml.write_text(RED_SE.replace("red.png", "text.png"))
    with pytest.raises(SettingsError, match="--overlays: overlay 'red'"):
        Settings.from_sources([], {"IMAGE_FACTORY_OVERLAYS": str(toml)})


def test_the_default_overlay_must_be_one_of_the_overlays(bad_files: Path) -> None:
    """--default-overlay names an overlay of --overlays, or the start fails."""
    toml = bad_files / "overlays.toml"
    toml.write_text(RED_SE)
    with pytest.raises(SettingsError, match="--default-overlay"):
        Settings.from_sources(["--overlays", str(toml), "--default-overlay", "blue"], {})
    with pytest.raises(SettingsError, match="--default-overlay"):
        Settings.from_sources(["--default-overlay", "red"], {})
    loaded = Settings.from_sources(["--overlays", str(toml), "--default-overlay", "red"], {})
    assert loaded.default_overlay == "red"


def test_a_preset_naming_an_unknown_overlay_is_refused_at_start(bad_files: Path) -> None:
    """Presets are checked with the overlays they may name."""
    toml = bad_files / "overlays.toml"
    toml.write_text(RED_SE)
    presets = bad_files / "presets.toml"
    presets.write_text('[thumb]\nw = 100\noverlay = "blue"\n')
    with pytest.raises(SettingsError, match="--presets: preset 'thumb': overlay 'blue'"):
        Settings.from_sources(["--overlays", str(toml), "--presets", str(presets)], {})
    presets.write_text('[thumb]\nw = 100\noverlay = "red"\n')
    Settings.from_sources(["--overlays", str(toml), "--presets", str(presets)], {})


def test_an_overlay_over_the_source_byte_limit_is_refused(bad_files: Path) -> None:
    """--max-source-bytes applies to overlay files too."""
    toml = bad_files / "overlays.toml"
    toml.write_text(RED_SE)
    with pytest.raises(SettingsError, match="max-source-bytes"):
        Settings.from_sources(["--overlays", str(toml), "--max-source-bytes", "10"], {})


@pytest.mark.parametrize("case", ["unknown key", "a png bomb", "a truncated png"])
def test_the_service_exits_2_with_one_line_for_a_bad_overlays_file(
    bad_files: Path, case: str
) -> None:
    """``python -m service --overlays BAD``: status 2, one line on stderr."""
    toml = bad_files / "overlays.toml"
    toml.write_text(BAD_TOML[case][0])
    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", "0", "--overlays", str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "IMAGE_FACTORY_CACHE_DIR": str(bad_files / "cache")},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--overlays" in lines[0]
    assert BAD_TOML[case][1] in lines[0]
