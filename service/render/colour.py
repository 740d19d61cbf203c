"""Colour: every original comes out as 8-bit sRGB, or 8-bit grey.

Two decisions live here, and nowhere else:

- **The embedded profile.** CMYK and every profile that is not plain sRGB
  (Adobe RGB, Display P3, XYB, ...) are converted to sRGB; an image without
  a profile, or with plain sRGB's (``icc``), is sRGB already and skips the
  transform. The transform itself runs inside libvips' ``thumbnail`` (the
  resize step passes ``thumbnail_options``): thumbnail applies it after the
  shrink, on output-sized pixels, and *before* a smart crop, so attention
  and entropy see the real colours. Applying it after thumbnail gives the
  same pixels for every other fit, but different attention crops of an XYB
  JPEG, which looks nothing like itself before its transform.
- **The colourspace of the result** (the ``to_srgb`` step): 16-bit and
  other non-8-bit results rescaled to 8 bits, and a grey image given colour
  bands exactly when a later step needs them: padding (the ``bg`` box may
  be coloured) or flattening onto a background that is not grey. Grey that
  needs neither stays one band: smaller files.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pyvips

from . import icc
from .fields import has_field

if TYPE_CHECKING:
    from .context import RenderContext


def needs_colour_management(header: pyvips.Image) -> bool:
    """CMYK, or an embedded profile other than plain sRGB (``icc``)."""
    if header.interpretation == "cmyk":
        return True
    if not has_field(header, "icc-profile-data"):
        return False
    return not icc.is_srgb(_icc_profile(header), also=_libvips_srgb_profile())


def thumbnail_options(needs_management: bool) -> dict[str, Any]:
    """The options that make ``thumbnail`` convert to sRGB (see above).
    (libvips also calls this option export_profile.)"""
    return {"output_profile": "srgb"} if needs_management else {}


def to_srgb(context: RenderContext) -> None:
    """Step: 8-bit sRGB or grey, with colour bands where a later step needs them."""
    image = context.image
    # 16-bit and other non-8-bit results: colourspace() rescales them properly
    # (a plain cast would clip 16-bit values and come out white).
    if not (image.format == "uchar" and str(image.interpretation) in ("srgb", "b-w")):
        colour_bands = image.bands - int(image.hasalpha())
        image = image.colourspace("b-w" if colour_bands == 1 else "srgb")
    if image.bands < 3 and _needs_colour_bands(context, image):
        image = image.colourspace("srgb")
    context.image = image


def _needs_colour_bands(context: RenderContext, image: pyvips.Image) -> bool:
    """A grey image that will be padded (onto a bg that may have colour), or
    flattened onto a background that is not grey."""
    if context.request.pads:
        return True
    red, green, blue, _ = context.request.background
    flattens = not context.output.has_alpha and image.hasalpha()
    return flattens and not red == green == blue


def _icc_profile(image: pyvips.Image) -> bytes:
    value: object = image.get("icc-profile-data")  # a blob: bytes
    return value if isinstance(value, bytes) else b""


@functools.cache
def _libvips_srgb_profile() -> tuple[bytes, ...]:
    """libvips' own sRGB profile, which libvips-made images embed (once per
    process: a 1-pixel transform attaches it)."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    try:
        return (_icc_profile(pixel.icc_transform("srgb", input_profile="srgb")),)
    except pyvips.Error:  # a libvips without lcms: every profile converts, as before
        return ()
