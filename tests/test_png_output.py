"""PNG output: the row filters the service writes (pipeline.png_save_options).

Read from the PNG itself: each row of the inflated image data starts with
its filter type (0 none, 1 sub, 2 up, 3 average, 4 Paeth).
"""

from __future__ import annotations

import struct
import zlib

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


async def test_opaque_images_get_adaptive_row_filters(client: Client) -> None:
    response = await client.get("/picture/exif_landscape_1.jpg?w=600&format=png")
    assert response.status == 200, await response.text()
    filters = row_filters(await response.read())
    # A photograph: libpng's heuristic picks real filters for most rows.
    assert sum(kind != 0 for kind in filters) > len(filters) // 2


async def test_a_padded_photo_keeps_its_filters(client: Client) -> None:
    """fit=pad adds an alpha band to an opaque photo: still a photo."""
    response = await client.get("/picture/exif_landscape_1.jpg?w=600&h=600&fit=pad&format=png")
    assert response.status == 200, await response.text()
    filters = row_filters(await response.read())
    assert sum(kind != 0 for kind in filters) > len(filters) // 2


async def test_images_with_alpha_are_written_unfiltered(client: Client) -> None:
    for name in ("png_rgba_small.png", "png_grey_alpha.png", "avif_alpha.avif"):
        response = await client.get(f"/picture/{name}?format=png")
        assert response.status == 200, await response.text()
        assert set(row_filters(await response.read())) == {0}, name
