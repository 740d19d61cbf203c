"""Plain-sRGB profiles are recognised (and their transform skipped) by
content; every other profile in the corpus still converts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pyvips

from service.render import colour, icc

from .conftest import CORPUS, MakeClient, decode

HP_SRGB = icc.HP_SRGB


def profile_of(path: Path) -> bytes:
    value = pyvips.Image.new_from_file(os.fspath(path)).get("icc-profile-data")
    assert isinstance(value, bytes)
    return value


def test_hp_srgb_is_recognised_whatever_its_creator_and_date() -> None:
    assert icc.is_srgb(HP_SRGB)
    restamped = HP_SRGB[:4] + b"lcms" + HP_SRGB[8:24] + bytes(12) + HP_SRGB[36:]
    assert icc.is_srgb(restamped)


def test_a_changed_colour_description_is_not_srgb() -> None:
    tampered = bytearray(HP_SRGB)
    tampered[-1] ^= 1  # in the tag data
    assert not icc.is_srgb(bytes(tampered))
    assert not icc.is_srgb(HP_SRGB[:16] + b"GRAY" + HP_SRGB[20:])  # header's colour space
    assert not icc.is_srgb(HP_SRGB[:128])


@pytest.mark.parametrize(
    "name",
    [
        "avif_p3_orient6.avif",
        "jpeg_adobergb_icc.jpg",
        "jpeg_big_icc_progressive.jpg",
        "jpeg_progressive_orient1.jpg",  # the ICC's "sRGB ... black scaled": not plain sRGB
        "jpeg_ultrahdr_gainmap.jpg",
        "jpeg_xyb_icc.jpg",
        "png_colormatch_icc.png",
    ],
)
def test_the_corpus_other_profiles_still_convert(name: str) -> None:
    header = pyvips.Image.new_from_file(os.fspath(CORPUS / name))
    assert not icc.is_srgb(profile_of(CORPUS / name))
    assert colour.needs_colour_management(header)


def tag(source: Path, target: Path, profile: bytes | None) -> None:
    image = pyvips.Image.new_from_file(os.fspath(source)).copy_memory()
    if profile is None:  # libvips' own sRGB profile, as libvips-made files carry it
        image = image.icc_transform("srgb", input_profile="srgb")
    else:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)  # type: ignore[arg-type]  # stubs lack blobs
    image.write_to_file(os.fspath(target))


@pytest.mark.parametrize("profile", [HP_SRGB, None], ids=["hp", "libvips"])
async def test_srgb_tagged_originals_render_as_their_untagged_pixels(
    originals: Path, make_client: MakeClient, profile: bytes | None
) -> None:
    source = originals / "exif_landscape_1.jpg"
    tag(source, originals / "tagged.png", profile)
    pyvips.Image.new_from_file(os.fspath(source)).write_to_file(os.fspath(originals / "plain.png"))
    header = pyvips.Image.new_from_file(os.fspath(originals / "tagged.png"))
    assert "icc-profile-data" in header.get_fields()
    assert not colour.needs_colour_management(header)

    client = await make_client()
    bodies = []
    for name in ("tagged.png", "plain.png"):
        response = await client.get(f"/picture/{name}?w=300&format=png")
        assert response.status == 200, await response.text()
        bodies.append(decode(await response.read()).convert("RGB").tobytes())
    assert bodies[0] == bodies[1]
