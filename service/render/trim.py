"""Trim: ``trim=T``, the original without its border of uniform colour.

The border's colour is the top-left pixel's (imgproxy's choice); a pixel
is border while no band differs from it by more than ``T`` 8-bit levels,
and the trim keeps the smallest box holding every other pixel. Alpha is
flattened onto magenta for the search (as imgproxy does), so a transparent
border is trimmed whatever colour its pixels hide. An original that is all
border, or smaller than 3x3 (libvips' minimum), keeps its whole size. An
animation is cut to the first frame's box, every frame alike, so that it
does not jump.

The trim comes after the crop and before rotate and resize, on the
original's own pixels, so it cannot shrink on load: the whole image is
decoded once into memory, upright (EXIF orientation applied) and cropped,
the box is found there, and the resize step then shrinks the trimmed image
from memory instead of loading the original again. What it costs: one
full decode, held in memory for the render (width x height x bands x
frames, counted against ``--max-decode-bytes`` and reserved in the decode
budget like the other whole-image decodes: ``limits.whole_decode_bytes``),
and a pass over it. For an 800 px output (``benchmarks/lab/filters.py``),
a 2.3 MP PNG, which cannot shrink on load anyway, cost 1.18x a plain
render; JPEGs, which can, 1.6x at 2.3 MP, 2.1x at 6.2 MP and 4x at 20 MP
(369 ms of CPU, and a peak RSS 80 MiB above the plain render's).
Reading the original twice instead (find the box, then decode again to
shrink the box) would hold a few lines but cost a second decode, and
could not turn a sideways JPEG upright without holding it all anyway.

The search is libvips' ``find_trim`` with ``line_art``: without it,
find_trim first takes the median of every 3x3 neighbourhood, which cost
582 ms of CPU on a 6 MP photo (4.4 s on 20 MP) against 47 ms for the
rest; so a lone speck in a border beyond the threshold stops the trim
there, and a one-pixel line is content.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pyvips

from .frames import frame_by_frame
from .libvips import LOAD_OPTIONS

if TYPE_CHECKING:
    from .context import RenderContext

# What alpha is flattened onto for the search: a colour rarely next to a
# transparent border.
_MAGENTA = [255.0, 0.0, 255.0]
_SMALLEST = 3  # find_trim's minimum width and height


def trim(context: RenderContext) -> None:
    """Step: decode the original whole and cut its uniform border away."""
    threshold = context.request.trim
    if threshold is None:
        return
    image = _decoded(context)
    frames = context.frames
    width, height = image.width, image.height // frames
    box = content_box(image.crop(0, 0, width, height), threshold)
    if box is not None:
        left, top, width, height = box
        image = frame_by_frame(image, frames, lambda frame: frame.crop(left, top, width, height))
    context.decoded = image
    # The later steps see the trimmed image as the original, upright already
    # and cropped already (the crop step's region is applied: none is left).
    context.region = None
    context.facts = replace(context.facts, width=width, height=height, orientation=1)


def content_box(frame: pyvips.Image, threshold: int) -> tuple[int, int, int, int] | None:
    """The box (left, top, width, height) inside ``frame``'s uniform border,
    or None when there is nothing to trim (all border, or too small)."""
    if frame.width < _SMALLEST or frame.height < _SMALLEST:
        return None
    search = frame
    if not (search.format == "uchar" and str(search.interpretation) == "srgb"):
        search = search.colourspace("srgb")  # 8-bit colour: T is in 8-bit levels
    if search.hasalpha():
        search = search.flatten(background=_MAGENTA)
    border = search.getpoint(0, 0)
    left, top, width, height = search.find_trim(
        threshold=threshold, background=border, line_art=True
    )
    if width == 0 or height == 0 or (width, height) == (frame.width, frame.height):
        return None
    return left, top, width, height


def _decoded(context: RenderContext) -> pyvips.Image:
    """The original (every frame rendered) decoded into memory, upright, and
    cut to the crop step's region (clamped there already)."""
    frames = context.frames
    source = pyvips.Source.new_from_descriptor(context.source_fd)
    options = LOAD_OPTIONS + (f",n={frames}" if frames > 1 else "")
    image = pyvips.Image.new_from_source(source, options, access="sequential")
    context.deadline.watch(image)  # the decode is computed here, not in save
    image = image.copy_memory()
    if frames == 1:  # an animation's orientation would turn the whole strip
        image = image.autorot()
    region = context.region
    if region is None:
        return image
    return frame_by_frame(
        image,
        frames,
        lambda frame: frame.crop(region.left, region.top, region.width, region.height),
    )
