"""Which quantisation table a JPEG output carries (render/encoding.py):
mozjpeg's table 5 under q90, the standard's Annex K from q90 and where the
output re-quantises an Annex K original's unchanged blocks near its own q.

Read from the output's DQT segment with Pillow, against libvips' own
encodes of a blank image at the same q with each table.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import Image

from service.render.encoding import (
    ANNEX_K_TABLE,
    FULL_CHROMA_FROM,
    RESAMPLED_JPEG_TABLE,
    near_own_quality,
)
from service.render.jpeg_markers import annex_k_luma, annex_k_quality, luma_quantisation

from .conftest import Client

K, T5 = ANNEX_K_TABLE, RESAMPLED_JPEG_TABLE


def luma_table(body: bytes) -> list[int]:
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "JPEG"
        tables = image.quantization  # type: ignore[attr-defined]
    return list(tables[0])


def encoded_table(table: int, quality: int) -> list[int]:
    blank = pyvips.Image.black(16, 16, bands=3)
    return luma_table(blank.jpegsave_buffer(Q=quality, quant_table=table))


def luma_of(data: bytes) -> tuple[int, ...] | None:
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        return luma_quantisation(handle.fileno())


def test_the_tables_differ_at_every_q() -> None:
    """Otherwise the cases below could not tell them apart (at q1 every
    value of both is 255, at q100 every value 1)."""
    for quality in range(2, 100):
        assert encoded_table(T5, quality) != encoded_table(K, quality)


def test_an_annex_k_original_is_known_by_its_q() -> None:
    blank = pyvips.Image.black(16, 16, bands=3)
    for quality in range(1, 101):
        data = blank.jpegsave_buffer(Q=quality, quant_table=K)
        assert luma_of(data) == annex_k_luma(quality)
        assert annex_k_quality(luma_of(data)) == quality
        other = blank.jpegsave_buffer(Q=quality, quant_table=T5)
        assert annex_k_quality(luma_of(other)) is None or quality in (1, 100)


def _jpeg(*segments: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(segments) + b"\xff\xda\x00\x02" + b"\x00" * 16 + b"\xff\xd9"


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + (2 + len(body)).to_bytes(2, "big") + body


def test_the_luma_table_from_the_markers() -> None:
    """Table 0 wherever the DQT segments put it, in 8 or 16 bits; None
    where it is missing or cut short."""
    eight = bytes(range(1, 65))
    sixteen = b"".join(v.to_bytes(2, "big") for v in range(300, 364))
    chroma = b"\x01" + bytes(64)
    assert luma_of(_jpeg(_segment(0xDB, b"\x00" + eight))) == tuple(eight)
    assert luma_of(_jpeg(_segment(0xDB, chroma + b"\x00" + eight))) == tuple(eight)
    assert luma_of(_jpeg(_segment(0xE1, b"Exif\x00\x00"), _segment(0xDB, b"\x10" + sixteen))) == (
        tuple(range(300, 364))
    )
    assert luma_of(_jpeg(_segment(0xDB, chroma))) is None
    assert luma_of(_jpeg(_segment(0xDB, b"\x00" + eight[:40]))) is None
    assert luma_of(b"\xff\xd8\xff\xdb\xff\xff" + eight) is None  # a length past the end
    assert luma_of(b"\x89PNG\r\n\x1a\n") is None


@pytest.fixture
def annex_k_original(originals: Path) -> str:
    """chelsea.png (451x300) as an Annex K JPEG at q80."""
    chelsea = pyvips.Image.new_from_file(str(originals / "chelsea.png"))
    chelsea.write_to_file(str(originals / "chelsea-k80.jpg"), Q=80, quant_table=K)
    return "chelsea-k80.jpg"


@pytest.mark.parametrize(
    ("query", "table", "quality"),
    [
        ("w=300", T5, 80),  # resized, at the default q
        ("w=300&q=89", T5, 89),
        ("w=300&q=90", K, FULL_CHROMA_FROM),
        ("w=300&q=97", K, 97),
        # At its own size, from its own q - 5 to its own q + 2: its blocks.
        ("", K, 80),
        ("q=75", K, 75),
        ("q=82", K, 82),
        ("w=451&q=78", K, 78),
        ("q=74", T5, 74),
        ("q=83", T5, 83),
        ("q=60", T5, 60),
        # At its own size, its pixels changed or moved.
        ("rotate=180", T5, 80),
        ("flip=h", T5, 80),
        ("blur=1", T5, 80),
        ("crop=0,0,451,300", K, 80),  # the whole: no crop, once canonical
        ("w=450", T5, 80),  # one pixel narrower: every block moved
    ],
)
async def test_the_table_by_q_and_original(
    client: Client, annex_k_original: str, query: str, table: int, quality: int
) -> None:
    response = await client.get(f"/picture/{annex_k_original}?format=jpeg&{query}")
    assert response.status == 200, await response.text()
    assert luma_table(await response.read()) == encoded_table(table, quality)


@pytest.mark.parametrize(
    ("path", "table", "quality"),
    [
        ("rocket.jpg?format=jpeg", T5, 80),  # at its own size, but not Annex K
        ("chelsea.png?format=jpeg", T5, 80),  # not a JPEG
        ("exif_landscape_1.jpg?format=jpeg&q=73", K, 73),  # Annex K q73, upright
        ("exif_landscape_6.jpg?format=jpeg&q=73", T5, 73),  # turned by its EXIF
        ("jpeg_adobergb_icc.jpg?format=jpeg&q=75", T5, 75),  # Annex K q75, converted to sRGB
        ("retina.jpg?format=jpeg&q=89", K, 89),  # Annex K q94
        ("retina.jpg?format=jpeg&q=88", T5, 88),
    ],
)
async def test_the_table_by_original(client: Client, path: str, table: int, quality: int) -> None:
    response = await client.get(f"/picture/{path}")
    assert response.status == 200, await response.text()
    assert luma_table(await response.read()) == encoded_table(table, quality)


async def test_auto_quality_encodes_on_table_5_throughout(
    client: Client, originals: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """q=auto's encodes, its probe's (half the size: a render of 300,000
    pixels or more has one) and the full size's, use table 5 at every q
    under 90, even for an Annex K original served as it is: its search
    takes the score to rise with q, which Annex K's window breaks."""
    original = pyvips.Image.new_from_file(str(originals / "retina.jpg")).resize(0.5)
    original.write_to_file(str(originals / "retina-k80.jpg"), Q=80, quant_table=K)
    tries: list[tuple[int, int, int]] = []  # (width, q, quant_table)
    write_to_buffer = pyvips.Image.write_to_buffer

    def spy(self: pyvips.Image, suffix: str, **options: Any) -> bytes:  # noqa: ANN401
        if suffix == ".jpg":
            tries.append((self.width, int(options["Q"]), int(options["quant_table"])))
        data: bytes = write_to_buffer(self, suffix, **options)
        return data

    monkeypatch.setattr(pyvips.Image, "write_to_buffer", spy)
    response = await client.get("/picture/retina-k80.jpg?format=jpeg&q=auto")
    assert response.status == 200, await response.text()
    full = original.width
    assert {width for width, _, _ in tries} == {full // 2, full}, tries
    assert any(near_own_quality(80, q) for width, q, _ in tries if width == full), tries
    for _, quality, table in tries:
        assert table == (K if quality >= FULL_CHROMA_FROM else T5), tries
    chosen = luma_table(await response.read())
    assert chosen in [encoded_table(t, q) for width, q, t in tries if width == full]


def test_the_benchmark_corpus_kind_of_file_is_read_without_error() -> None:
    """Every conformance JPEG's table is read or None, never an error."""
    folder = Path(__file__).parent / "corpus" / "conformance"
    for path in sorted(folder.glob("*.jp*g")):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            luma = luma_quantisation(descriptor)
        finally:
            os.close(descriptor)
        assert luma is None or len(luma) == 64, path
