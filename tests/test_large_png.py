"""Wide PNGs are reduced along their lines first (less memory), with the
same size and, to rounding, the same pixels as libvips' plain thumbnail."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pyvips

from .conftest import Client

# 4x the widest box below, or more: the lines-first path is taken.
SOURCE_SCALE = 3.0


def psnr(first: pyvips.Image, second: pyvips.Image) -> float:
    difference = first.cast("float") - second.cast("float")
    mean_square = max((difference * difference).avg(), 1e-9)
    return 10 * math.log10(255**2 / mean_square)


@pytest.fixture
def wide_pngs(originals: Path) -> dict[str, Path]:
    """Opaque photos as PNGs of 1920x1281, one stored sideways (EXIF 6)."""
    photo = pyvips.Image.new_from_file(str(originals / "rocket.jpg")).resize(SOURCE_SCALE)
    made = {"wide.png": photo.copy(), "sideways.png": photo.copy()}
    made["sideways.png"].set_type(pyvips.GValue.gint_type, "orientation", 6)
    paths = {}
    for name, image in made.items():
        image.pngsave(str(originals / name))
        paths[name] = originals / name
    return paths


@pytest.mark.parametrize(
    ("name", "width"), [("wide.png", 300), ("wide.png", 457), ("sideways.png", 200)]
)
async def test_a_wide_png_matches_plain_thumbnail(
    client: Client, wide_pngs: dict[str, Path], name: str, width: int
) -> None:
    response = await client.get(f"/picture/{name}?w={width}&format=png")
    assert response.status == 200
    served = pyvips.Image.new_from_buffer(await response.read(), "")
    plain = pyvips.Image.thumbnail(
        str(wide_pngs[name]), width, height=10_000_000, size="down", output_profile="srgb"
    )
    assert (served.width, served.height) == (plain.width, plain.height)
    assert served.width == width
    assert psnr(served, plain) > 45.0


async def test_a_wide_png_with_alpha_keeps_its_transparency(
    client: Client, originals: Path
) -> None:
    photo = pyvips.Image.new_from_file(str(originals / "rocket.jpg")).resize(SOURCE_SCALE)
    # Transparent on the left half: thumbnail premultiplies before filtering,
    # so the path that filters lines first must not be taken.
    alpha = (pyvips.Image.xyz(photo.width, photo.height)[0] > photo.width // 2).ifthenelse(255, 0)
    photo.bandjoin(alpha.cast("uchar")).pngsave(str(originals / "alpha.png"))
    response = await client.get("/picture/alpha.png?w=300&format=png")
    assert response.status == 200
    served = pyvips.Image.new_from_buffer(await response.read(), "")
    assert served.hasalpha()
    assert served.crop(0, 0, 100, served.height)[3].max() == 0
    assert served.crop(200, 0, 100, served.height)[3].min() == 255
