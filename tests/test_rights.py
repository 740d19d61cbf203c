"""Rights metadata (--keep-copyright): the creator and copyright fields of
EXIF, IPTC and XMP survive into JPEG, WebP and AVIF outputs, written anew;
nothing else does. Originals are written with exiftool, outputs read back
with Pillow and exiftool, neither of which is the code under test.

``make test`` installs exiftool (Debian's libimage-exiftool-perl) and sets
IMAGE_FACTORY_REQUIRE_EXIFTOOL=1, which turns a missing exiftool into a
failure; elsewhere these tests skip without it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import ExifTags, Image, IptcImagePlugin, PngImagePlugin

from service.render import read_facts

from .conftest import Client, MakeClient, decode

EXIFTOOL = shutil.which("exiftool")
REQUIRED = os.environ.get("IMAGE_FACTORY_REQUIRE_EXIFTOOL") == "1"

pytestmark = pytest.mark.skipif(
    EXIFTOOL is None and not REQUIRED, reason="exiftool is not installed (make test installs it)"
)

CARRIERS = ["jpeg", "webp", "avif"]

# Every metadata tag an output may carry: the rights fields and the
# structure EXIF requires, which libvips writes (Orientation only as 1).
ALLOWED = {
    "IFD0:Artist",
    "IFD0:Copyright",
    "IFD0:Orientation",
    "IFD0:XResolution",
    "IFD0:YResolution",
    "IFD0:ResolutionUnit",
    "ExifIFD:ExifVersion",
    "ExifIFD:FlashpixVersion",
    "ExifIFD:ColorSpace",
    "ExifIFD:ExifImageWidth",
    "ExifIFD:ExifImageHeight",
    "XMP-dc:Creator",
    "XMP-dc:Rights",
    "IPTC:CodedCharacterSet",
    "IPTC:ApplicationRecordVersion",
    "IPTC:By-line",
    "IPTC:CopyrightNotice",
}
# The metadata families exiftool is asked for: everything but the file's
# own structure (sizes, chunks, JFIF density).
FAMILIES = ["-EXIF:all", "-XMP:all", "-IPTC:all", "-Photoshop:all", "-ICC_Profile:all"]
FAMILIES += ["-MakerNotes:all", "-GPS:all", "-Composite:GPS*"]


def exiftool(*arguments: str) -> str:
    assert EXIFTOOL is not None, "exiftool is required here (IMAGE_FACTORY_REQUIRE_EXIFTOOL=1)"
    done = subprocess.run(
        [EXIFTOOL, *arguments], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def metadata(body: bytes, tmp_path: Path, suffix: str) -> dict[str, Any]:
    """Every metadata tag of an encoded image, as exiftool reads it."""
    path = tmp_path / f"output.{suffix}"
    path.write_bytes(body)
    tags: dict[str, Any] = json.loads(exiftool("-j", "-a", "-G1", *FAMILIES, str(path)))[0]
    tags.pop("SourceFile")
    return tags


def base_jpeg(path: Path, *, exif: Image.Exif | None = None) -> None:
    """A 320x240 gradient (something for the encoders to work on)."""
    image = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    image.save(path, "JPEG", quality=90, exif=exif if exif is not None else Image.Exif())


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Model] = "Model 7"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"SECRET-MAKERNOTE" + bytes(16)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:01:02 03:04:05"
    return exif


@pytest.fixture
def photo(originals: Path, tmp_path: Path) -> Path:
    """A camera JPEG with every field that must go (GPS in EXIF and XMP, a
    maker note, a thumbnail, the camera's make, orientation 6) and the
    rights fields of all three blocks."""
    path = originals / "photo.jpg"
    base_jpeg(path, exif=camera_exif())
    thumbnail = tmp_path / "thumbnail.jpg"
    Image.new("RGB", (160, 120), (0, 255, 0)).save(thumbnail)
    exiftool(
        "-q",
        "-overwrite_original",
        f"-ThumbnailImage<={thumbnail}",
        "-Orientation#=6",
        "-GPSLatitude=48.8583",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=2.2945",
        "-GPSLongitudeRef=E",
        "-EXIF:Artist=Jane Doe",
        "-EXIF:Copyright=(c) 2026 Jane Doe",
        "-IPTC:By-line=Jane Doe (agency)",
        "-IPTC:CopyrightNotice=(c) 2026 Agency",
        "-IPTC:City=Paris",
        "-XMP-dc:Creator=Jane Doe",
        "-XMP-dc:Creator+=John Roe",
        "-XMP-dc:Rights=\u00a9 2026 Jane Doe",
        "-XMP-dc:Description=At the tower",
        "-XMP-exif:GPSLatitude=48.8583 N",
        "-XMP-exif:GPSLongitude=2.2945 E",
        "-XMP-tiff:Make=SecretCam",
        str(path),
    )
    return path


def pillow_exif(image: Image.Image) -> Image.Exif:
    return image.getexif()


def xmp_dc(image: Image.Image) -> tuple[list[str], str]:
    """dc:creator's entries and dc:rights' x-default, as Pillow reads them."""
    description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    creators = description["creator"]["Seq"]["li"]
    rights = description["rights"]["Alt"]["li"]
    return ([creators] if isinstance(creators, str) else creators), rights["text"]


async def fetch(client: Client, name: str, fmt: str) -> bytes:
    response = await client.get(f"/picture/{name}?w=200&format={fmt}")
    assert response.status == 200, await response.text()
    return await response.read()


def test_the_photo_carries_what_must_not_survive(photo: Path) -> None:
    """The oracle: Pillow finds in the original every field the outputs
    must lose, so their absence below is the render's doing."""
    image = decode(photo.read_bytes())
    exif = image.getexif()
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif[ExifTags.Base.Make] == "SecretCam"
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote].startswith(b"SECRET")
    assert exif.get_ifd(ExifTags.IFD.IFD1)  # the thumbnail's directory
    assert b"GPSLatitude" in image.info["xmp"]
    tags = json.loads(exiftool("-j", "-a", "-G1", *FAMILIES, str(photo)))[0]
    assert "IFD1:ThumbnailImage" in tags
    assert "IPTC:City" in tags


@pytest.mark.parametrize("fmt", CARRIERS)
async def test_rights_fields_survive_and_nothing_else(
    make_client: MakeClient, photo: Path, tmp_path: Path, fmt: str
) -> None:
    """EXIF's Artist and Copyright and XMP's dc:creator and dc:rights (for
    JPEG, IPTC's By-line and Copyright Notice too) come through; GPS, maker
    note, thumbnail, camera and every other field do not."""
    body = await fetch(await make_client(), photo.name, fmt)
    image = decode(body)
    exif = pillow_exif(image)
    assert exif[ExifTags.Base.Artist] == "Jane Doe"
    assert exif[ExifTags.Base.Copyright] == "(c) 2026 Jane Doe"
    assert exif.get(ExifTags.Base.Orientation, 1) == 1
    assert ExifTags.Base.Make not in exif
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert not exif.get_ifd(ExifTags.IFD.IFD1)
    assert ExifTags.Base.MakerNote not in exif.get_ifd(ExifTags.IFD.Exif)
    assert xmp_dc(image) == (["Jane Doe", "John Roe"], "\u00a9 2026 Jane Doe")
    assert b"GPS" not in image.info["xmp"]
    assert image.info.get("icc_profile") is None  # no ICC profile, as before

    tags = metadata(body, tmp_path, fmt)
    assert set(tags) <= ALLOWED, set(tags) - ALLOWED
    assert tags["IFD0:Artist"] == "Jane Doe"
    assert tags["XMP-dc:Creator"] == ["Jane Doe", "John Roe"]
    assert tags["XMP-dc:Rights"] == "\u00a9 2026 Jane Doe"
    assert tags.get("IFD0:Orientation", "Horizontal (normal)") == "Horizontal (normal)"
    if fmt == "jpeg":
        iptc = IptcImagePlugin.getiptcinfo(Image.open(io.BytesIO(body)))
        assert iptc is not None
        assert iptc[(2, 80)] == b"Jane Doe (agency)"
        assert iptc[(2, 116)] == b"(c) 2026 Agency"
        assert (2, 90) not in iptc  # City
        assert tags["IPTC:By-line"] == "Jane Doe (agency)"
    else:
        assert not any(tag.startswith("IPTC:") for tag in tags)


@pytest.mark.parametrize("fmt", CARRIERS)
async def test_iptc_travels_as_xmp_where_the_format_has_no_iptc(
    make_client: MakeClient, originals: Path, tmp_path: Path, fmt: str
) -> None:
    """An original whose rights are in IPTC alone: JPEG keeps the IPTC
    block, and every format's XMP carries its values."""
    path = originals / "agency.jpg"
    base_jpeg(path)
    exiftool(
        "-q",
        "-overwrite_original",
        "-IPTC:By-line=Ann Agent",
        "-IPTC:By-line+=Bob Agent",
        "-IPTC:CopyrightNotice=(c) Agency",
        "-IPTC:Keywords=secret",
        str(path),
    )
    body = await fetch(await make_client(), path.name, fmt)
    image = decode(body)
    assert xmp_dc(image) == (["Ann Agent", "Bob Agent"], "(c) Agency")
    assert "exif" not in image.info  # no EXIF rights: no EXIF block
    tags = metadata(body, tmp_path, fmt)
    assert set(tags) <= ALLOWED, set(tags) - ALLOWED
    assert ("IPTC:By-line" in tags) == (fmt == "jpeg")
    if fmt == "jpeg":
        assert tags["IPTC:By-line"] == ["Ann Agent", "Bob Agent"]


async def test_non_ascii_names_survive_in_xmp_and_fold_in_exif(
    make_client: MakeClient, originals: Path
) -> None:
    """EXIF's text is ASCII: accents are dropped there, and a name that
    cannot be spelt in ASCII is left out of EXIF; XMP has the full text."""
    path = originals / "names.jpg"
    base_jpeg(path)
    exiftool(
        "-q",
        "-overwrite_original",
        "-charset",
        "exif=utf8",
        "-EXIF:Artist=Jos\u00e9 M\u00fcller",
        "-EXIF:Copyright=\u5c71\u7530\u592a\u90ce",
        str(path),
    )
    image = decode(await fetch(await make_client(), path.name, "webp"))
    exif = pillow_exif(image)
    assert exif[ExifTags.Base.Artist] == "Jose Muller"
    assert ExifTags.Base.Copyright not in exif
    assert xmp_dc(image) == (["Jos\u00e9 M\u00fcller"], "\u5c71\u7530\u592a\u90ce")


@pytest.mark.parametrize("fmt", CARRIERS)
async def test_no_keep_copyright_strips_every_field(
    make_client: MakeClient, photo: Path, tmp_path: Path, fmt: str
) -> None:
    body = await fetch(await make_client(keep_copyright=False), photo.name, fmt)
    image = decode(body)
    assert "exif" not in image.info
    assert "xmp" not in image.info
    assert metadata(body, tmp_path, fmt) == {}


@pytest.mark.parametrize("fmt", ["png", "gif"])
async def test_png_and_gif_outputs_carry_no_metadata(
    make_client: MakeClient, photo: Path, tmp_path: Path, fmt: str
) -> None:
    body = await fetch(await make_client(), photo.name, fmt)
    assert metadata(body, tmp_path, fmt) == {}


@pytest.mark.parametrize(
    "name",
    [
        "jpeg_cmyk.jpg",  # EXIF, IPTC (no 0x0404) and XMP without rights
        "jpeg_progressive_orient1.jpg",  # EXIF and XMP
        "chelsea.png",  # a camera's XMP
        "avif_p3_orient6.avif",
        "webp_exif_orient6.webp",
    ],
)
async def test_originals_without_rights_render_as_with_everything_stripped(
    make_client: MakeClient, name: str
) -> None:
    """Metadata but no rights field: the same bytes as --no-keep-copyright,
    with no metadata at all (as every output was before)."""
    kept, stripped = await make_client(), await make_client(keep_copyright=False)
    for fmt in CARRIERS:
        body = await fetch(kept, name, fmt)
        assert body == await fetch(stripped, name, fmt), fmt
        image = decode(body)
        assert "exif" not in image.info
        assert "xmp" not in image.info


def jpeg_with_segments(path: Path, *segments: tuple[int, bytes]) -> None:
    """A plain JPEG with the given APPn segments inserted after SOI."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((320, 240)).convert("RGB").save(buffer, "JPEG")
    plain = buffer.getvalue()
    inserted = b"".join(
        bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
        for marker, payload in segments
    )
    path.write_bytes(plain[:2] + inserted + plain[2:])


XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
RIGHTS_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{}</rdf:li></rdf:Alt></dc:rights>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
)
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE x ['
    '<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + "".join(
        f'<!ENTITY {name} "{("&" + previous + ";") * 20}">'
        for previous, name in zip("abcdefg", "bcdefgh", strict=True)
    )
    + "]>"
    + RIGHTS_XMP.format("&h;")
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
EXTERNAL += RIGHTS_XMP.format("&s;")


def hostile_png(path: Path) -> None:
    """A PNG whose XMP (iTXt) is over the bound: 2 MB of padding."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", RIGHTS_XMP.format("(c) Jane") + " " * 2_000_000)
    Image.linear_gradient("L").resize((320, 240)).save(path, "PNG", pnginfo=info)


def jpeg_with_xmp(packet: str | bytes) -> Callable[[Path], None]:
    data = packet.encode() if isinstance(packet, str) else packet
    return lambda path: jpeg_with_segments(path, (0xE1, XMP_APP1 + data))


def jpeg_with_iptc(block: bytes) -> Callable[[Path], None]:
    return lambda path: jpeg_with_segments(path, (0xED, b"Photoshop 3.0\x00" + block))


# Each hostile original, and the field in which libvips hands its block on.
HOSTILE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "xmp entity bomb": ("xmp-data", jpeg_with_xmp(BOMB)),
    "xmp external entity": ("xmp-data", jpeg_with_xmp(EXTERNAL)),
    "xmp invalid": ("xmp-data", jpeg_with_xmp(RIGHTS_XMP.format("(c) Jane")[:-40])),
    "xmp oversized": ("xmp-data", hostile_png),
    # The resource says 64 bytes, 14 follow; then a dataset longer than its resource.
    "iptc truncated": (
        "iptc-data",
        jpeg_with_iptc(b"8BIM\x04\x04\0\0\0\0\0\x40\x1c\x02\x50\0\x30Jane"),
    ),
    "iptc overlong": (
        "iptc-data",
        jpeg_with_iptc(b"8BIM\x04\x04\0\0\0\0\0\x09\x1c\x02\x74\x7f\xffJane"),
    ),
    "exif out of bounds": (
        "exif-data",
        lambda path: jpeg_with_segments(path, (0xE1, b"Exif\0\0II*\0\xff\xff\0\0" + bytes(16))),
    ),
}


def test_the_builders_make_rights_that_survive_when_well_formed(tmp_path: Path) -> None:
    """The oracle for the hostile cases: the same builders with a good
    block give rights fields, read from the header as a render reads them."""
    for make in (
        jpeg_with_xmp(RIGHTS_XMP.format("(c) Jane")),
        jpeg_with_iptc(b"8BIM\x04\x04\0\0\0\0\0\x0d\x1c\x02\x74\0\x08(c) Jane\0"),
    ):
        path = tmp_path / "good.jpg"
        make(path)
        with open(path, "rb") as handle:
            facts = read_facts(handle.fileno(), allow_svg=False)
        assert facts.rights.rights == "(c) Jane"


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_hostile_metadata_never_fails_a_render_nor_leaks(
    make_client: MakeClient, originals: Path, tmp_path: Path, kind: str
) -> None:
    """Oversized, invalid, entity-laden or truncated blocks: the render
    succeeds and carries no rights fields (nor anything else)."""
    field, make = HOSTILE[kind]
    path = originals / ("hostile.png" if kind == "xmp oversized" else "hostile.jpg")
    make(path)
    assert field in pyvips.Image.new_from_file(os.fspath(path)).get_fields()  # it is read
    kept, stripped = await make_client(), await make_client(keep_copyright=False)
    for fmt in CARRIERS:
        body = await fetch(kept, path.name, fmt)
        assert metadata(body, tmp_path, fmt) == {}, fmt
        assert body == await fetch(stripped, path.name, fmt), fmt


async def test_a_broken_block_loses_only_its_own_fields(
    make_client: MakeClient, originals: Path
) -> None:
    """An entity bomb in the XMP beside a good EXIF: EXIF's fields survive
    (and fill the fresh XMP), the bomb is dropped unread."""
    path = originals / "mixed.jpg"
    jpeg_with_segments(path, (0xE1, XMP_APP1 + BOMB.encode()))
    exiftool("-q", "-overwrite_original", "-EXIF:Artist=Jane Doe", str(path))
    image = decode(await fetch(await make_client(), path.name, "jpeg"))
    assert pillow_exif(image)[ExifTags.Base.Artist] == "Jane Doe"
    assert b"aaaa" not in image.info["xmp"]
    description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    assert description["creator"]["Seq"]["li"] == "Jane Doe"
    assert "rights" not in description
