"""Which quantisation table a JPEG output carries (render/encoding.py):
mozjpeg's table 5 for a render under q90, the standard's Annex K from q90
and for a JPEG original served on its own 8x8 grid.

Read from the output's DQT segment with Pillow, against libvips' own
encodes of a blank image at the same q with each table.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pyvips
from PIL import Image

from service.render.encoding import ANNEX_K_TABLE, FULL_CHROMA_FROM, RESIZED_JPEG_TABLE

from .conftest import Client


def luma_table(body: bytes) -> list[int]:
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "JPEG"
        tables = image.quantization  # type: ignore[attr-defined]
    return list(tables[0])


def encoded_table(table: int, quality: int) -> list[int]:
    blank = pyvips.Image.black(16, 16, bands=3)
    return luma_table(blank.jpegsave_buffer(Q=quality, quant_table=table))


def test_the_tables_differ_at_every_q() -> None:
    """Otherwise the cases below could not tell them apart (at q1 every
    value of both is 255, at q100 every value 1)."""
    for quality in range(2, 100):
        assert encoded_table(RESIZED_JPEG_TABLE, quality) != encoded_table(ANNEX_K_TABLE, quality)


@pytest.mark.parametrize(
    ("query", "table", "quality"),
    [
        ("rocket.jpg?w=300&format=jpeg", RESIZED_JPEG_TABLE, 80),  # the default q
        ("rocket.jpg?w=300&format=jpeg&q=89", RESIZED_JPEG_TABLE, 89),
        ("rocket.jpg?w=300&format=jpeg&q=90", ANNEX_K_TABLE, FULL_CHROMA_FROM),
        ("rocket.jpg?w=300&format=jpeg&q=97", ANNEX_K_TABLE, 97),
        # A JPEG at its own size: its blocks as they were quantised.
        ("rocket.jpg?format=jpeg", ANNEX_K_TABLE, 80),
        ("rocket.jpg?w=640&format=jpeg&q=60", ANNEX_K_TABLE, 60),
        # Not a JPEG original: nothing to keep.
        ("chelsea.png?format=jpeg", RESIZED_JPEG_TABLE, 80),
        # One pixel narrower: resized, every block moved.
        ("rocket.jpg?w=639&format=jpeg", RESIZED_JPEG_TABLE, 80),
    ],
)
async def test_the_table_by_q_and_grid(
    client: Client, query: str, table: int, quality: int
) -> None:
    response = await client.get(f"/picture/{query}")
    assert response.status == 200, await response.text()
    assert luma_table(await response.read()) == encoded_table(table, quality)


async def test_auto_quality_searches_with_the_table_it_answers_with(
    client: Client, originals: Path
) -> None:
    """q=auto's encodes are the save step's: a resized render gets table 5
    at whatever q it chose, a JPEG at its own size Annex K (its probe, at
    half the size, is encoded with table 5, but the answer is full size:
    a render of 300,000 pixels or more has a probe)."""
    retina = pyvips.Image.new_from_file(str(originals / "retina.jpg"))
    retina.resize(0.5).write_to_file(str(originals / "retina-705.jpg"), Q=90)
    resized = await client.get("/picture/retina-705.jpg?w=500&format=jpeg&q=auto")
    assert resized.status == 200, await resized.text()
    found = luma_table(await resized.read())
    assert any(found == encoded_table(RESIZED_JPEG_TABLE, q) for q in range(2, FULL_CHROMA_FROM))

    own_size = await client.get("/picture/retina-705.jpg?format=jpeg&q=auto")
    assert own_size.status == 200, await own_size.text()
    found = luma_table(await own_size.read())
    assert any(found == encoded_table(ANNEX_K_TABLE, q) for q in range(2, 100))
