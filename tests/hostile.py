"""A deterministic generator of hostile originals, with the status each must get.

Built from scratch (decompression bombs with honest headers and tiny
bodies) or from the conformance corpus (truncations, lies about the type).
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

from .conftest import CORPUS


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with a few KB of zeros."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * 65536, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def gif_bomb(width: int, height: int) -> bytes:
    """A GIF declaring width x height in both screen and image descriptors."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + image + b"\x02\x02\x44\x01\x00\x3b"


def tiff_bomb(width: int, height: int) -> bytes:
    """A little-endian TIFF declaring width x height, one tiny strip."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd_offset = 8 + 16
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_offset) + b"\0" * 16 + ifd


def jpeg_bomb(width: int, height: int) -> bytes:
    """A JPEG header (SOI, SOF0) declaring width x height, then nothing."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def hostile_corpus(directory: Path) -> dict[str, int]:
    """Write the hostile originals into ``directory``; return name -> status."""
    directory.mkdir(parents=True, exist_ok=True)
    chooser = random.Random(20261124)  # noqa: S311 - reproducible, not secret
    photo = (CORPUS / "exif_landscape_1.jpg").read_bytes()
    png = (CORPUS / "png_palette.png").read_bytes()
    expected: dict[str, int] = {}

    def add(name: str, data: bytes, status: int) -> None:
        (directory / name).write_bytes(data)
        expected[name] = status

    add("bomb-50000x50000.png", png_bomb(50_000, 50_000), 422)
    add("bomb-65535x65535.png", png_bomb(65_535, 65_535), 422)
    add("bomb-65535x65535.gif", gif_bomb(65_535, 65_535), 422)
    add("bomb-100000x100000.tif", tiff_bomb(100_000, 100_000), 422)
    add("bomb-65500x65500.jpg", jpeg_bomb(65_500, 65_500), 422)
    add("bomb-1x200000000.png", png_bomb(1, 200_000_000), 422)
    add("wide-1048640x64.png", png_bomb(1_048_640, 64), 422)  # 67 MP, but 4 GB to decode
    add("zero-bytes.jpg", b"", 422)
    add("random.png", chooser.randbytes(20_000), 422)
    add("text.png", b"<html><body>not an image</body></html>\n", 422)
    add("matrix.jpg", b"3 3\n1 0 0\n0 1 0\n0 0 1\n", 422)
    add("truncated-header.jpg", photo[:300], 422)
    add("truncated-half.jpg", photo[: len(photo) // 2], 422)
    add("truncated.png", png[: len(png) // 3], 422)
    add("svg-named.png", (CORPUS / "svg_logo.svg").read_bytes(), 422)
    add("jpeg-named.png", photo, 200)  # a lying extension: served by content
    add("png-named.gif", png, 200)
    add("no-extension", photo, 200)
    return expected
