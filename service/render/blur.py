"""Blur: ``blur=S``, a Gaussian blur of the output-sized image.

The sigma is in output pixels (the spec has applied ``dpr``), and the blur
runs after the colour step, on the 8-bit image the client receives, so its
cost follows the output, not the original. On 800 px outputs of 2-20 MP
originals (``benchmarks/lab/filters.py``) it added 2-7 ms of CPU at sigma
2 (1.04-1.10x a plain render), 4-13 ms at sigma 20 (1.06-1.42x) and
16-33 ms at sigma 50, a mask 181 pixels wide (1.18-2.4x: over 1.5x where
the plain render is cheap). libvips' ``approximate`` precision was slower
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

from typing import TYPE_CHECKING

from .convolution import cached_window
from .frames import frame_by_frame

if TYPE_CHECKING:
    import pyvips

    from .context import RenderContext


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
        return cached_window(image, sigma).gaussblur(sigma)
    premultiplied = cached_window(image.premultiply().cast("uchar"), sigma)
    return premultiplied.gaussblur(sigma).unpremultiply().cast("uchar")
