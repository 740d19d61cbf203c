"""Sharpen: ``sharpen=S``, an unsharp mask of the output-sized image's lightness.

The sigma is in output pixels (``dpr`` applied by the spec), on the 8-bit
output after the colour step and the blur. The method is libvips'
``sharpen``'s: the lightness minus its Gaussian blur is the detail, a
coring curve shapes it (small differences are flat areas, larger ones
edges, and the boost is capped each way), and the result is added back to
the lightness alone, so edges sharpen without colour fringes. The curve
(``_curve``) has vips_sharpen's shape and limits, in L* units, with these
slopes:

- ``m1`` (flat areas, differences up to 2 L*) is 1, not libvips' 0: with
  0, detail softer than 2 L* is left alone, so a small sigma did nothing
  to a soft photograph (a 40-level edge blurred with sigma 2 kept its
  steepest step of 8 levels at sigma 1 and 2; with 1, it became 9 and 10);
- ``m2`` (edges) is 2, not libvips' 3 (its choice for print at sigma
  0.5): our sigmas reach 10, and the boost spreads as wide as the sigma.

sharp uses the same two slopes. vips_sharpen itself converts the image to
LabS and back, 17 ms of its 37 ms of CPU on an 800x600 output; on 800 px
outputs of 2-20 MP originals its renders cost 1.25-2.6x a plain one
(``benchmarks/lab/filters.py``), where the issue allows 1.5x. Here the
lightness is libvips' 8-bit ``b-w`` (luminance, gamma-encoded much like
L*, taken as 2.55 levels to one L*) and the detail is added to each colour
band, in integer arithmetic: 11 ms (14 ms at sigma 10, 22 ms with alpha),
1.08-1.31x a plain render, 1.5-1.6x for an output a third the original's
size, with edges within 3 levels of vips_sharpen's with the same slopes.

Alpha is kept as it is, and the detail is measured against the blur of
what is visible only (the blur of lightness times alpha over the blur of
alpha), so the colour of transparent pixels does not put halos on the
edges of a cut-out. Both blurs run on 8-bit images (the premultiplied
lightness rounded to 8 bits), which brought a sharpen with alpha from
1.43-1.55x a plain render of the same 1109 px output to 1.37-1.44x. Grey
stays one band; an animation is sharpened frame by frame.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import pyvips

from .convolution import cached_window
from .frames import frame_by_frame

if TYPE_CHECKING:
    from .context import RenderContext

# vips_sharpen's curve, in L* units: differences up to _FLAT count as flat
# areas; the boost is capped at _MAX_LIGHTER and _MAX_DARKER.
_FLAT = 2.0  # x1
_FLAT_SLOPE = 1.0  # m1 (see above)
_EDGE_SLOPE = 2.0  # m2 (see above)
_MAX_LIGHTER = 10.0  # y2
_MAX_DARKER = 20.0  # y3
_LEVELS_PER_L = 255 / 100  # 8-bit lightness levels to one L*


def sharpen(context: RenderContext) -> None:
    """Step: sharpen the output-sized image by the request's sigma."""
    sigma = context.request.sharpen
    if sigma is None:
        return
    context.image = frame_by_frame(
        context.image, context.frames, lambda frame: unsharp(frame, sigma)
    )


def unsharp(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """An 8-bit sRGB or grey image (alpha or not) sharpened with ``sigma``."""
    # Read at several lines at once (the lightness, its blur, the result):
    # computed once through the resize, not once per reader. (A cache of
    # the lightness too measured slower than computing it twice.)
    source = cached_window(image, sigma)
    alpha = source[image.bands - 1] if image.hasalpha() else None
    colour = source if alpha is None else source.extract_band(0, n=image.bands - 1)
    lightness = colour if colour.bands == 1 else colour.colourspace("b-w")
    # The curve is indexed by the detail (-255 to 255 levels) plus 255.
    if alpha is None:
        index = lightness.cast("ushort") + lightness.gaussblur(sigma).invert()
    else:
        # The premultiplied lightness in 8 bits (L x alpha / 256), so that
        # both Gaussians run on 8-bit pixels: libvips blurs those with SIMD,
        # 2.5 ms on a 1109x693 image at sigma 5 against 12.8 ms for the
        # 16-bit product. The rounding costs precision only where alpha is
        # low, in proportion to how little of the pixel shows: at most 2.4
        # levels of the premultiplied colour on gulp.png, 3 where alpha is
        # over half.
        premultiplied = ((lightness * alpha) >> 8).cast("uchar")
        # Where nothing is visible nearby the blurred alpha is 0, and
        # libvips' divide answers 0: the pixel is transparent anyway.
        visible = premultiplied.gaussblur(sigma) / alpha.gaussblur(sigma)
        # lightness - 256 x visible + 255, rounded (the cast truncates).
        index = (visible.linear([-256.0], [255.5]) + lightness).cast("ushort")
    # One boost per colour band, from the LUT's bands: 10 % faster than
    # adding one band to three.
    boost = index.maplut(_curve(colour.bands))
    sharpened = (colour + boost).cast("uchar")
    if alpha is not None:
        sharpened = sharpened.bandjoin(alpha)
    return sharpened.copy(interpretation=image.interpretation)


@functools.cache
def _curve(bands: int) -> pyvips.Image:
    """The boost for each detail value from -255 to 255 levels (511
    entries), repeated in ``bands`` bands."""
    boosts = []
    for index in range(511):
        difference = (index - 255) / _LEVELS_PER_L  # in L*
        size = abs(difference)
        if size <= _FLAT:
            boost = size * _FLAT_SLOPE
        else:
            boost = _FLAT * _FLAT_SLOPE + (size - _FLAT) * _EDGE_SLOPE
        boost = min(boost, _MAX_LIGHTER) if difference > 0 else -min(boost, _MAX_DARKER)
        boosts.append(round(boost * _LEVELS_PER_L))
    curve = pyvips.Image.new_from_array([boosts]).cast("short")
    copies: list[pyvips.Image | int | float] = [curve] * (bands - 1)
    return (curve.bandjoin(copies) if copies else curve).copy_memory()
