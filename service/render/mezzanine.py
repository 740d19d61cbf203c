"""The mezzanine: one smaller, fast-reading copy of an original, and renders from it.

An original asked for at several widths is decoded whole for each of them
(a progressive 18 MP JPEG: ~0.6 s each time). The mezzanine is that
original shrunk once, with libvips' ``thumbnail`` (shrink-on-load, Lanczos
3), to at most ``MEZZANINE_SIDE`` pixels on its longest side (never
enlarged), and kept in libvips' native format (``.v``: the pixels
uncompressed, mapped into memory when read), so that every smaller variant
reads its pixels from it instead of decoding the original again.

What it holds, decided so that every step after the resize works unchanged:

- **upright**: EXIF orientation applied at build (``thumbnail`` turns it),
  so regions are cut from it with no stored-axes arithmetic;
- **8-bit sRGB (or grey), alpha kept**: the original's profile (ICC, CMYK)
  converted at build exactly as a direct render converts it, and 16-bit
  values rescaled, so a render from it passes no colour options;
- **one frame**: animations never use it (``worth_building``).

A render uses it only where it holds enough pixels: the size the output
needs of the region it shows (the whole picture, a crop, a focal point's
cover window) must be no larger, on both axes, than that region's pixels in
the mezzanine (``resize`` asks ``covers``). So a small crop of a huge
original, or an output larger than the mezzanine, reads the original.
Sizes come from the original's facts, never from the mezzanine's, so a
variant has the same size whichever path rendered it.

Format, by measurement (docs/benchmarks-journal.md, 2026-12-02, the
mezzanine): native ``.v`` rendered an 800-px JPEG from the mezzanine ~1.8x
faster than a 4:4:4 JPEG Q95 and ~8x faster than lossless WebP (whose save
alone took 3-8 s), at 7-9 MB per 2048-px photo (JPEG Q95: ~1 MB; it cannot
hold alpha). libvips' native loader is blocked for untrusted input; it is
unblocked for files given by path only (``vipsload_source`` needs a named
file), and originals, opened by descriptor and held to the loader allow-
list (``header``), can never be read as ``.v``: only the mezzanine store's
own files are.
"""

from __future__ import annotations

from typing import Any

import pyvips

from .colour import thumbnail_options
from .failures import Deadline, libvips_message, release_images
from .geometry import Rect
from .header import HeaderFacts
from .libvips import LOAD_OPTIONS

# The longest side of a mezzanine: a 2x retina display's 1,024-px slot, and
# the largest width of most srcsets.
MEZZANINE_SIDE = 2048
SVG_LOADER = "svgload_source"


class MezzanineUnusable(Exception):
    """A render from the mezzanine failed in libvips: the file is damaged
    (its pixels are read lazily), or the render fails anyway; the caller
    renders from the original, which tells."""


def worth_building(facts: HeaderFacts) -> bool:
    """Whether an original gets a mezzanine at all: still raster images
    (an animation's frames, and a vector drawing's any-size rendering, are
    not one picture of fixed pixels)."""
    return not facts.animated and facts.loader != SVG_LOADER


def mezzanine_size(facts: HeaderFacts) -> tuple[int, int]:
    """The upright size ``build`` gives an original of these facts (as
    libvips' thumbnail sizes it: the longest side exact, the other rounded)."""
    width, height = facts.width, facts.height
    longest = max(width, height)
    if longest <= MEZZANINE_SIDE:
        return width, height
    scale = MEZZANINE_SIDE / longest
    if width >= height:
        return MEZZANINE_SIDE, max(1, round(height * scale))
    return max(1, round(width * scale)), MEZZANINE_SIDE


def build(facts: HeaderFacts, source_fd: int, path: str, timeout_seconds: float) -> bool:
    """Shrink the original open at ``source_fd`` into a mezzanine written
    at ``path`` (a temporary of the store, named by it: libvips writes its
    native format to named files only). False when libvips fails (an
    original that cannot be decoded, past ``timeout_seconds``, a full
    disk): the render goes on from the original, which reports the failure
    that is the original's."""
    try:
        with Deadline(timeout_seconds) as deadline:
            _build(facts, source_fd, path, deadline)
    except (pyvips.Error, UnicodeDecodeError) as error:
        libvips_message(error)  # read, so that libvips' error buffer is cleared
        release_images(error)
        return False
    return True


def _build(facts: HeaderFacts, source_fd: int, path: str, deadline: Deadline) -> None:
    image = pyvips.Image.thumbnail_source(
        pyvips.Source.new_from_descriptor(source_fd),
        MEZZANINE_SIDE,
        height=MEZZANINE_SIDE,
        size="down",
        option_string=LOAD_OPTIONS,
        **thumbnail_options(facts.needs_colour_management),
    )
    if not (image.format == "uchar" and str(image.interpretation) in ("srgb", "b-w")):
        colour_bands = image.bands - int(image.hasalpha())
        image = image.colourspace("b-w" if colour_bands == 1 else "srgb")
    deadline.watch(image)
    # keep="none": every field a render writes comes from the original's
    # facts (rights); the profile is sRGB's, which outputs do not embed.
    # Any: pyvips' stubs type keep as its flags' number, libvips takes the name too.
    options: dict[str, Any] = {"keep": "none"}
    image.vipssave(path, **options)


def load(path: str, facts: HeaderFacts) -> pyvips.Image | None:
    """The mezzanine at ``path`` (the store's file, by name), or None when
    it is not the one ``build`` makes of an original of ``facts`` (another
    size: not ours, or torn). Its pixels are read lazily: a file damaged
    after its header fails later, in the render (which then renders from
    the original: ``service.renders``)."""
    try:
        image = pyvips.Image.vipsload_source(pyvips.Source.new_from_file(path))
    except pyvips.Error:
        return None
    expected = mezzanine_size(facts)
    # thumbnail rounds the shorter side its own way: within a pixel.
    if abs(image.width - expected[0]) > 1 or abs(image.height - expected[1]) > 1:
        return None
    if image.format != "uchar" or max(image.width, image.height) != max(expected):
        return None
    return image


def covers(
    mezzanine: pyvips.Image, facts: HeaderFacts, region: Rect, need: tuple[int, int]
) -> bool:
    """Whether ``region`` of the upright original, in the mezzanine, holds at
    least ``need`` pixels on each axis (the output's size of that region)."""
    scale_x = mezzanine.width / facts.width
    scale_y = mezzanine.height / facts.height
    return region.width * scale_x >= need[0] and region.height * scale_y >= need[1]


def region_of(mezzanine: pyvips.Image, facts: HeaderFacts, region: Rect) -> pyvips.Image:
    """``region`` of the upright original, cut from the mezzanine in whole
    pixels of it (edges move by at most half a mezzanine pixel)."""
    scale_x = mezzanine.width / facts.width
    scale_y = mezzanine.height / facts.height
    left = min(mezzanine.width - 1, round(region.left * scale_x))
    top = min(mezzanine.height - 1, round(region.top * scale_y))
    right = max(left + 1, min(mezzanine.width, round((region.left + region.width) * scale_x)))
    bottom = max(top + 1, min(mezzanine.height, round((region.top + region.height) * scale_y)))
    if (left, top, right, bottom) == (0, 0, mezzanine.width, mezzanine.height):
        return mezzanine
    return mezzanine.crop(left, top, right - left, bottom - top)
