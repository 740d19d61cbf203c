"""EXIF orientation: all eight variants of a photo come out upright."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from .conftest import CORPUS, Client, decode

# Mean absolute difference per channel (0-255) allowed between two renders of
# the same upright scene: JPEG re-encoding noise is ~1-3; a wrong rotation or
# mirror of these photos is > 30.
TOLERANCE = 8.0


async def render_png(client: Client, name: str) -> Image.Image:
    response = await client.get(f"/picture/{name}?scalex=200&encoding=png")
    assert response.status == 200, await response.text()
    return decode(await response.read()).convert("RGB")


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
@pytest.mark.parametrize("orientation", range(2, 9))
async def test_exif_orientation_is_applied(client: Client, kind: str, orientation: int) -> None:
    """Orientation N renders like the orientation-1 photo."""
    reference = await render_png(client, f"exif_{kind}_1.jpg")
    rotated = await render_png(client, f"exif_{kind}_{orientation}.jpg")
    assert mean_difference(reference, rotated) < TOLERANCE


async def test_orientation_check_detects_a_wrong_rotation(client: Client) -> None:
    """The tolerance is meaningful: the photo turned the wrong way (180°) is far off."""
    reference = await render_png(client, "exif_landscape_1.jpg")
    flipped = reference.transpose(Image.Transpose.ROTATE_180)
    assert mean_difference(reference, flipped) > 4 * TOLERANCE


@pytest.mark.parametrize(
    ("name", "portrait"),
    [
        ("jpeg_progressive_orient6.jpg", True),
        ("webp_exif_orient6.webp", None),
        ("tiff_g4_orient6.tif", False),
        ("jpeg_2x1_orient8.jpg", True),
    ],
)
async def test_other_oriented_originals_come_out_upright(
    client: Client, name: str, portrait: bool | None
) -> None:
    """Orientation is applied for progressive JPEG, WebP, TIFF and tiny
    images: the pixels are the original's as Pillow turns it upright (the
    WebP is square, so only its pixels can tell)."""
    response = await client.get(f"/picture/{name}?encoding=png")
    assert response.status == 200
    image = decode(await response.read())
    if portrait is True:
        assert image.height > image.width
    elif portrait is False:
        assert image.width > image.height
    upright = ImageOps.exif_transpose(Image.open(CORPUS / name)).convert("RGB")
    assert mean_difference(image.convert("RGB"), upright) < TOLERANCE
    assert "exif" not in image.info  # metadata stripped, no stale orientation tag
