"""Rights metadata: the creator and copyright fields kept when all else is
stripped (``--keep-copyright``, on by default).

Read once per original from its header (``read_rights``, part of
``HeaderFacts``): EXIF's Artist and Copyright, IPTC's By-line and Copyright
Notice, XMP's ``dc:creator`` and ``dc:rights`` (``rights_codecs`` parses
each block). A block that cannot be read (truncated, oversized, invalid or
hostile XML) gives no fields; the render never fails for it.

Written anew by the ``write_rights`` step, never copied: the image loses
every metadata field it carried (EXIF with its GPS, maker notes and
thumbnail, XMP, which can hold GPS too, IPTC, orientation), then gets only

- EXIF: IFD0's Artist and Copyright, from the original's EXIF, in ASCII
  (``exif_ascii``). libvips adds the fields EXIF requires: Orientation 1,
  the resolution, the EXIF and FlashPix versions, the pixel dimensions and
  the colour space, stated as sRGB (which every output is);
- XMP: a fresh packet with ``dc:creator`` and ``dc:rights``, from the
  original's XMP, else its IPTC, else its EXIF (the Metadata Working
  Group's equivalences), so the full Unicode text survives in every format;
- IPTC, for JPEG only and only when the original had IPTC rights: a fresh
  block with the By-lines and the Copyright Notice. WebP and AVIF have no
  IPTC: its values travel in the XMP.

JPEG, WebP and AVIF outputs carry them; PNG and GIF outputs carry no
metadata at all (``_CARRIERS`` says why). An original without any of these
fields renders exactly as with ``--no-keep-copyright``: every metadata
block stripped (``keep="none"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pyvips

from ..formats import OutputFormat
from .fields import has_field
from .rights_codecs import (
    MetadataError,
    exif_ascii,
    iptc_block,
    parse_exif,
    parse_iptc,
    parse_xmp,
    xmp_packet,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .context import RenderContext

# The formats that carry them. GIF has no place for either; libvips writes
# PNG's XMP into a zTXt chunk, whose text is Latin-1 (the XMP specification
# names iTXt, UTF-8), so readers take its UTF-8 for other characters.
_CARRIERS = frozenset({OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.AVIF})
# The fields libvips writes as metadata; every "exif-ifdN-..." one besides.
_METADATA_FIELDS = ("exif-data", "xmp-data", "iptc-data", "jpeg-thumbnail-data", "orientation")
# An EXIF block without a single entry (little-endian TIFF, an empty IFD0):
# libvips' EXIF writer starts from it and drops whatever it adds that the
# image has no field for, so the block it writes has only what is set here
# and the fields EXIF requires. Without any block it would start from
# libexif's defaults, which add YCbCr fields to PNG and WebP outputs.
_EMPTY_EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"
_SRGB_COLOUR_SPACE = "1"  # EXIF's ColorSpace: 1 is sRGB, 65535 "uncalibrated"

_T = TypeVar("_T")
_NO_LIST: tuple[tuple[str, ...], str] = ((), "")


@dataclass(frozen=True, slots=True)
class Rights:
    """The original's creator and copyright fields, cleaned and bounded."""

    exif_artist: str = ""
    exif_copyright: str = ""
    iptc_creators: tuple[str, ...] = ()
    iptc_copyright: str = ""
    xmp_creators: tuple[str, ...] = ()
    xmp_rights: str = ""

    def __bool__(self) -> bool:
        return self != NO_RIGHTS

    @property
    def creators(self) -> tuple[str, ...]:
        """``dc:creator``: XMP's, else the By-lines, else EXIF's Artist
        (whose names are separated by semicolons)."""
        if self.xmp_creators or self.iptc_creators:
            return self.xmp_creators or self.iptc_creators
        return tuple(name.strip() for name in self.exif_artist.split(";") if name.strip())

    @property
    def rights(self) -> str:
        """``dc:rights``: XMP's, else the Copyright Notice, else EXIF's."""
        return self.xmp_rights or self.iptc_copyright or self.exif_copyright


NO_RIGHTS = Rights()


def read_rights(header: pyvips.Image) -> Rights:
    """The rights fields of the original whose header is ``header``."""
    artist, copyright_text = _read(header, "exif-data", parse_exif, ("", ""))
    iptc_creators, iptc_copyright = _read(header, "iptc-data", parse_iptc, _NO_LIST)
    xmp_creators, xmp_rights = _read(header, "xmp-data", parse_xmp, _NO_LIST)
    return Rights(artist, copyright_text, iptc_creators, iptc_copyright, xmp_creators, xmp_rights)


def _read(header: pyvips.Image, name: str, parse: Callable[[bytes], _T], none: _T) -> _T:
    if not has_field(header, name):
        return none
    value: object = header.get(name)  # a blob: bytes (some loaders give XMP as a string)
    blob = value.encode() if isinstance(value, str) else value
    if not isinstance(blob, bytes):
        return none
    try:
        return parse(blob)
    except MetadataError:
        return none


def write_rights(context: RenderContext) -> None:
    """Step: the original's rights fields, written anew, and nothing else."""
    rights = context.facts.rights
    if not (rights and context.policy.keep_copyright and context.output in _CARRIERS):
        return
    image = context.image.copy()
    for name in image.get_fields():
        if name.startswith("exif-") or name in _METADATA_FIELDS:
            image.remove(name)
    keep = []
    artist, copyright_text = exif_ascii(rights.exif_artist), exif_ascii(rights.exif_copyright)
    if artist or copyright_text:
        _set_blob(image, "exif-data", _EMPTY_EXIF)
        for name, text in (("Artist", artist), ("Copyright", copyright_text)):
            if text:
                # libvips drops a trailing " (...)" from what it writes (its
                # own rendering's tail): give it an empty one to drop.
                image.set_type(pyvips.GValue.gstr_type, f"exif-ifd0-{name}", f"{text} ()")
        image.set_type(pyvips.GValue.gstr_type, "exif-ifd2-ColorSpace", _SRGB_COLOUR_SPACE)
        keep.append("exif")
    if rights.creators or rights.rights:
        _set_blob(image, "xmp-data", xmp_packet(rights.creators, rights.rights))
        keep.append("xmp")
    if context.output is OutputFormat.JPEG and (rights.iptc_creators or rights.iptc_copyright):
        _set_blob(image, "iptc-data", iptc_block(rights.iptc_creators, rights.iptc_copyright))
        keep.append("iptc")
    context.image = image
    context.keep = "|".join(keep)


def _set_blob(image: pyvips.Image, name: str, blob: bytes) -> None:
    image.set_type(pyvips.GValue.blob_type, name, blob)  # type: ignore[arg-type]  # stubs lack blobs
