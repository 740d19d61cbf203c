"""Blur: ``blur=S``, a Gaussian blur of the output-sized image.

The sigma is in output pixels (the spec has applied ``dpr``), and the blur
runs after the colour step, on the 8-bit image the client receives, so its
cost follows the output, not the original. On 800 px outputs of 2-20 MP
originals (``benchmarks/lab/filters.py``) it added 2-7 ms of CPU at sigma
2 (1.04-1.10x a plain render), 4-13 ms at sigma 20 (1.06-1.42x) and
16-33 ms at sigma 50 directly, a mask 181 pixels wide (1.18-2.4x: over
1.5x where the plain render is cheap); on a shrunk copy (``_blurred``),
sigma 50 is 1.22x on a 2.3 MP JPEG and 1.46x on a 2 MP one to 800x800,
the costliest case before. libvips' ``approximate`` precision was slower
at every sigma.

An image with alpha is blurred premultiplied: blurred straight, the colour
of transparent pixels (black, after the resize) would bleed into the edges
of what is visible, a dark fringe. The premultiplied values are rounded to
8 bits before the blur (integer convolution, 2.4x faster than in float);
once composited, that rounding is under one level. An animation is
blurred frame by frame, so that no frame bleeds into its neighbours in the
strip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .convolution import cached_window
from .frames import frame_by_frame

if TYPE_CHECKING:
    import pyvips

    from .context import RenderContext

# From sigma 28, blur a copy shrunk by one per 4 of sigma (7 at 28, 12 at
# 50: the Gaussian there is about 4 px), measured against the direct blur.
_SHRUNK_FROM_SIGMA = 28.0
_SIGMA_PER_SHRINK = 4.0
_SMALLEST_SIDE = 8  # the shrunk copy keeps at least this many pixels a side
_MARGIN_FACTORS = 3  # edge pixels kept around the copy, in shrink factors


def blur(context: RenderContext) -> None:
    """Step: blur the output-sized image by the request's sigma."""
    sigma = context.request.blur
    if sigma is None:
        return
    context.image = frame_by_frame(
        context.image, context.frames, lambda frame: gaussian(frame, sigma)
    )


def gaussian(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """An 8-bit image blurred with ``sigma``, premultiplied when it has alpha."""
    if not image.hasalpha():
        return _blurred(image, sigma)
    premultiplied = image.premultiply().cast("uchar")
    return _blurred(premultiplied, sigma).unpremultiply().cast("uchar")


def _blurred(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """The Gaussian itself. A wide one runs on a copy shrunk by ``factor``
    (a box average, whose own spread is taken off the sigma), then grows
    back by the same whole factor, bilinearly: what a sigma of 28 or more
    leaves has no detail a 1/7 copy loses. On an 800x800 output, sigma 50
    took 10 ms this way against 23 ms, within 3 levels of the direct blur
    everywhere (51.9 dB); below 28 the direct blur is the cheaper. The copy
    is cut from the image extended by its edges, as the direct blur reads
    them, so the borders agree too."""
    factor = int(sigma // _SIGMA_PER_SHRINK)
    if sigma < _SHRUNK_FROM_SIGMA or min(image.width, image.height) < factor * _SMALLEST_SIDE:
        return cached_window(image, sigma).gaussblur(sigma)
    margin = _MARGIN_FACTORS * factor
    extended = image.embed(
        margin, margin, image.width + 2 * margin, image.height + 2 * margin, extend="copy"
    )
    small = extended.shrink(factor, factor)
    remaining = math.sqrt(sigma * sigma - (factor * factor - 1) / 12) / factor
    grown = small.gaussblur(remaining).resize(factor, kernel="linear")
    return grown.crop(margin, margin, image.width, image.height).cast("uchar")
