"""The pixels a q=auto score reads: a render's, and a candidate encode's
decoded as a browser would decode it.

A candidate is one of the service's own encodes, never an upload, so a
second decoder reads only bytes this process wrote.

AVIF is decoded through Pillow, whose wheels' libavif decodes with dav1d
(the AV1 decoder of Chrome and Firefox), when the installed Pillow reads
AVIF; one thread a decode, like every other step of a render. libvips'
own AVIF decoder is libheif with aom's: an 800x500 candidate took 31-35
ms with it against 6-7 ms with dav1d on the machine of 2026-12-07 (AMD
EPYC, two cores), and a search decodes three candidates, which made the
decodes a third of an AVIF search. The two decodes score within 0.16 of
each other on the corpus photos (the chroma's upsampling differs by a
few levels at edges). A thread sleeping 0.5 ms in a loop beside
back-to-back decodes woke no later beside dav1d's than beside libvips'
(99th percentile of its delay 0.5 ms against 1.0), so the event loop
beside a render keeps its pace.

Every other format is decoded with libvips. Pillow's WebP decode gives
the same pixels in about half the time, but that thread woke later
beside it (99th percentile 2.3 ms, the longest 7 ms, against 1.5 and
2.9): it holds the GIL for part of each decode. Its JPEG decode takes as
long as libvips'.
"""

from __future__ import annotations

import io
from functools import cache
from typing import TYPE_CHECKING

import pyvips

from ..formats import OutputFormat

if TYPE_CHECKING:
    from .ssimulacra2 import Pixels


# Pillow holds the GIL for part of its AVIF load, about 1.9 ns a pixel
# (a thread sleeping beside it woke 17.8 ms late for a 4096x2304 decode,
# 0.5 ms at 800x500): larger candidates are libvips' (4.7 ms at 4096 px).
# Beside back-to-back decodes at 1411x1411, just under the bound, 1 ms
# sleeps took 1.2-1.4 ms at the 90th percentile and 8-9 ms at worst.
PILLOW_MAX_PIXELS = 2_100_000


def pixels_of(image: pyvips.Image) -> Pixels:
    """An 8-bit image as sRGB pixels (grey made colour), alpha kept."""
    # numpy is imported here, not at start: only a q=auto render needs it.
    import numpy as np  # noqa: PLC0415

    if image.bands < 3:
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )


def decoded_pixels(data: bytes, output: OutputFormat, *, alpha: bool) -> Pixels:
    """``data``, an encode of ours as ``output``, decoded: sRGB pixels
    with alpha when ``alpha``, else alpha (if any) blended on white."""
    if output is OutputFormat.AVIF and _set_up_pillow_avif():
        pixels = _avif_pixels(data, alpha=alpha)
        if pixels is not None:
            return pixels
    decoded = pyvips.Image.new_from_buffer(data, "")
    if decoded.hasalpha() and not alpha:
        decoded = decoded.flatten(background=[255.0, 255.0, 255.0])
    return pixels_of(decoded)


@cache
def _set_up_pillow_avif() -> bool:
    """Once per process: set Pillow's AVIF decodes to one thread each, and
    say whether the installed Pillow decodes AVIF at all (its wheels'
    libavif decodes with dav1d)."""
    try:
        from PIL import AvifImagePlugin, features  # noqa: PLC0415
    except ImportError:
        return False
    # Pillow's default is a thread per core for each decode; a render is
    # one thread, and the render slots already number the cores.
    AvifImagePlugin.DEFAULT_MAX_THREADS = 1
    return bool(features.check("avif"))


def _avif_pixels(data: bytes, *, alpha: bool) -> Pixels | None:
    """The pixels of an AVIF through libavif, or None where libvips
    decodes it instead: an image over ``PILLOW_MAX_PIXELS``, alpha on an
    opaque render's encode (libvips blends it, as before), or an error."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data), formats=["AVIF"]) as image:
            if image.width * image.height > PILLOW_MAX_PIXELS:
                return None
            if image.mode in ("RGBA", "LA") and not alpha:
                return None
            mode = "RGBA" if alpha else "RGB"
            return np.asarray(image if image.mode == mode else image.convert(mode))
    # What Pillow's AVIF plugin raises (libavif's results as SyntaxError,
    # ValueError or RuntimeError). Never seen with the service's encodes;
    # libvips then decodes it, rather than the render failing.
    except (OSError, SyntaxError, ValueError, RuntimeError):
        return None
