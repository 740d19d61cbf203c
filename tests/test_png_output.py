"""PNG output: the row filters the service writes (render/save.py png_save_options).

Read from the PNG itself: each row of the inflated image data starts with
its filter type (0 none, 1 sub, 2 up, 3 average, 4 Paeth).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from .conftest import Client

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def row_filters(png: bytes) -> list[int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, body = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    stride = 1 + width * _CHANNELS[colour]
    pixels = zlib.decompress(idat)
    assert len(pixels) == stride * height
    return [pixels[row * stride] for row in range(height)]


# libpng choosing among these for each row: the photographs' filters.
_PHOTO_FILTERS = {0, 1, 3}  # none, sub, average


def assert_photo_filters(filters: list[int]) -> None:
    assert set(filters) <= _PHOTO_FILTERS, set(filters)
    # A photograph: libpng's heuristic picks real filters for most rows.
    assert sum(kind != 0 for kind in filters) > len(filters) // 2


async def fetch_png(client: Client, url: str) -> list[int]:
    response = await client.get(url)
    assert response.status == 200, await response.text()
    assert response.content_type == "image/png"
    return row_filters(await response.read())


async def test_photographs_get_row_filters(client: Client) -> None:
    # A JPEG original is a photograph; so is a PNG photo (chelsea.png
    # compresses to 0.59 of its raw size).
    for url in ("/picture/exif_landscape_1.jpg?w=600&format=png", "/picture/chelsea.png"):
        assert_photo_filters(await fetch_png(client, url))


async def test_a_padded_photo_keeps_its_filters(client: Client) -> None:
    """fit=pad adds an alpha band to an opaque photo: still a photo."""
    url = "/picture/exif_landscape_1.jpg?w=600&h=600&fit=pad&format=png"
    assert_photo_filters(await fetch_png(client, url))


async def test_images_with_alpha_are_written_unfiltered(client: Client) -> None:
    for name in ("png_rgba_small.png", "png_grey_alpha.png", "avif_alpha.avif"):
        assert set(await fetch_png(client, f"/picture/{name}?format=png")) == {0}, name


async def test_drawn_images_are_written_unfiltered(client: Client, originals: Path) -> None:
    """A palette PNG, an opaque GIF, and an RGB PNG of flat colour (a chart
    that compresses to under a tenth of its raw size) are drawn, not
    photographs."""
    chart = Image.new("RGB", (900, 600), "white")
    draw = ImageDraw.Draw(chart)
    for index, height in enumerate((120, 340, 260, 480, 200)):
        draw.rectangle((60 + index * 160, 560 - height, 160 + index * 160, 560), fill="steelblue")
    draw.line((40, 560, 860, 560), fill="black", width=3)
    draw.text((60, 20), "requests per second", fill="black")
    chart.save(originals / "chart.png")
    chart.save(originals / "chart.gif")  # opaque: no alpha to decide it
    raw = 900 * 600 * 3
    assert (originals / "chart.png").stat().st_size < raw / 10
    for url in (
        "/picture/chart.png?w=600",
        "/picture/png_palette.png",
        "/picture/chart.gif?w=600&format=png",
    ):
        assert set(await fetch_png(client, url)) == {0}, url


async def test_a_photographic_rgb_png_keeps_its_filters(client: Client, originals: Path) -> None:
    """Gradients under sensor-like noise do not compress tenfold: filtered
    like a photograph."""
    ramp = Image.linear_gradient("L").resize((900, 600))
    noise = Image.effect_noise((900, 600), 24)
    mirrored = ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    bands = (ImageChops.add(ramp, noise, 2), ramp, ImageChops.add(mirrored, noise, 2))
    Image.merge("RGB", bands).save(originals / "photo-like.png")
    assert (originals / "photo-like.png").stat().st_size > 900 * 600 * 3 / 10
    assert_photo_filters(await fetch_png(client, "/picture/photo-like.png?w=600"))


def test_drawn_is_a_tenth_of_the_decoded_size(tmp_path: Path) -> None:
    """The rule at its edge, on real headers: the raw size counts 16-bit
    samples as 2 bytes, and only PNGs are judged by their size."""
    import pyvips  # noqa: PLC0415 - the service's own reader of headers

    from service.render.header import is_drawn  # noqa: PLC0415

    def header(name: str, image: pyvips.Image) -> pyvips.Image:
        path = tmp_path / name
        image.write_to_file(str(path))
        return pyvips.Image.new_from_file(str(path))

    grey = pyvips.Image.black(100, 100, bands=3) + 128
    eight = header("8.png", grey.cast("uchar"))
    sixteen = header("16.png", (grey * 256).cast("ushort").copy(interpretation="rgb16"))
    assert sixteen.format == "ushort"
    # raw: 30,000 bytes at 8 bits, 60,000 at 16
    assert is_drawn(eight, 2_999)
    assert not is_drawn(eight, 3_001)
    assert is_drawn(sixteen, 5_999)
    assert not is_drawn(sixteen, 6_001)
    jpeg = header("x.jpg", grey.cast("uchar"))
    assert not is_drawn(jpeg, 1)  # a JPEG is a photograph whatever its size
