"""Crop: a rectangle of the upright original, read at the scale the output needs.

The ``crop`` step is arithmetic on the header: it clamps the requested
rectangle to the upright original, refuses one wholly outside it (422),
and records the rest as the context's ``region``, which the fit modes then
treat as the original (``RenderContext.picture``). The resize step reads
the region with ``load_region``, at the size it computed for it:

1. the region in the pixels as stored: the crop is upright, the file is
   stored as its EXIF orientation says (``geometry.stored_rect``);
2. shrink on load as far as the region's own reduction allows, leaving
   the final filter the policy's depth, as for a whole image
   (``geometry.SERVICE_DEPTH``: 1.5x after libjpeg's 2, 2x after 4 or 8;
   JPEG, Ultra HDR), or 2x after libwebp's scale (WebP); other formats
   load at full size;
3. the region cut from that load, in whole loaded pixels (its edges move by
   at most half a loaded pixel, under a quarter of an output pixel), then
   ``thumbnail_image`` to exactly the target: thumbnail's own box shrink and
   Lanczos 3, premultiplied alpha, colour management and EXIF rotation, on
   the region's pixels alone.

The load stays sequential: cutting a region only skips rows, in order.
Rows below the region are never decoded; rows above it are, at the load's
scale (a JPEG cannot be entered mid-scan, and libvips' loaders read from
the top), and every row at its whole width. An animation's decoder makes
whole frames anyway: its strip is shrunk whole, then each frame's region
cut (``_animation_region``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyvips

from ..errors import UnprocessableImage
from . import colour
from .frames import per_frame
from .geometry import Rect, clamp_rect, jpeg_shrink, stored_rect, turned
from .libvips import LOAD_OPTIONS
from .mezzanine import covers, region_of

if TYPE_CHECKING:
    from .context import RenderContext

# Loaders with libjpeg's shrink-on-load (1, 2, 4, 8), and with libwebp's.
JPEG_SHRINK_LOADERS = frozenset({"jpegload_source", "uhdrload_source"})
_WEBP_SCALE_LOADER = "webpload_source"


def crop(context: RenderContext) -> None:
    """Step: the requested rectangle, clamped to the upright original."""
    asked = context.request.crop
    if asked is None:
        return
    size = (context.facts.width, context.facts.height)
    region = clamp_rect(Rect(asked.left, asked.top, asked.width, asked.height), size)
    if region is None:
        raise UnprocessableImage(
            f"crop={asked.left},{asked.top},{asked.width},{asked.height} lies wholly "
            f"outside the {size[0]}x{size[1]} original"
        )
    context.region = region


def load_region(context: RenderContext, region: Rect, target: tuple[int, int]) -> pyvips.Image:
    """``region`` of the upright original (per frame) resized to exactly
    ``target``, reading as few pixels of the original as that allows."""
    if context.frames > 1:
        return _animation_region(context, region, target)
    facts, mezzanine = context.facts, context.mezzanine
    if mezzanine is not None and covers(mezzanine, facts, region, target):
        # From the original's mezzanine: upright and sRGB already.
        context.from_mezzanine = True
        part = region_of(mezzanine, facts, region)
        return part.thumbnail_image(target[0], height=target[1], size="force")
    stored = stored_rect(region, facts.orientation, facts.stored_size)
    # Both in stored axes: the loaders shrink the stored pixels.
    stored_target = turned(target, 90 if facts.swaps_axes else 0)
    options = LOAD_OPTIONS
    scale = 1.0
    if facts.loader in JPEG_SHRINK_LOADERS:
        shrink = jpeg_shrink(stored.size, stored_target, context.policy.jpeg_shrink_depth)
        options += f",shrink={shrink}"
        scale = 1 / shrink
    elif facts.loader == _WEBP_SCALE_LOADER:
        reduction = min(stored.width / stored_target[0], stored.height / stored_target[1])
        scale = 1 / max(1.0, reduction / 2)
        options += f",scale={scale!r}"
    source = pyvips.Source.new_from_descriptor(context.source_fd)
    image = pyvips.Image.new_from_source(source, options, access="sequential")
    if facts.loader == _WEBP_SCALE_LOADER:
        scale = image.width / facts.stored_size[0]  # libwebp rounds the scaled size
    cut = _scaled(stored, scale, (image.width, image.height))
    image = image.crop(cut.left, cut.top, cut.width, cut.height)
    # Any: pyvips' stubs type each option; this dict holds a varying few.
    resize_options: dict[str, Any] = colour.thumbnail_options(facts.needs_colour_management)
    # thumbnail_image turns the region upright by its orientation field.
    return image.thumbnail_image(target[0], height=target[1], size="force", **resize_options)


def _animation_region(
    context: RenderContext, region: Rect, target: tuple[int, int]
) -> pyvips.Image:
    """An animation's region. Its decoders make whole frames whatever is
    cut (GIF, animated WebP), so the whole strip is shrunk as the plain
    path does it, to the scale the region needs, and each frame's region is
    cut from that, to the nearest pixel. Resizing each cut frame by itself
    held a pipeline per frame (190 MB for 100 frames of 1000x1000 cut to
    500x500 into 300x300, 60 MB this way), and resizing the strip of cut
    frames read the GIF's frames out of order (33 s, against 2 s)."""
    facts, frames = context.facts, context.frames
    scale = (target[0] / region.width, target[1] / region.height)
    whole = (
        max(target[0], round(facts.width * scale[0])),
        max(target[1], round(facts.height * scale[1])),
    )
    # Any: pyvips' stubs type each option; this dict holds a varying few.
    options: dict[str, Any] = colour.thumbnail_options(facts.needs_colour_management)
    strip = pyvips.Image.thumbnail_source(
        pyvips.Source.new_from_descriptor(context.source_fd),
        whole[0],
        height=whole[1],
        size="force",
        option_string=f"{LOAD_OPTIONS},n={frames}",
        **options,
    )
    left = min(whole[0] - target[0], round(region.left * whole[0] / facts.width))
    top = min(whole[1] - target[1], round(region.top * whole[1] / facts.height))
    return per_frame(strip, frames, lambda frame: frame.crop(left, top, target[0], target[1]))


def _scaled(rect: Rect, scale: float, bounds: tuple[int, int]) -> Rect:
    """``rect`` at ``scale``, in whole pixels of an image of ``bounds``."""
    left = min(bounds[0] - 1, round(rect.left * scale))
    top = min(bounds[1] - 1, round(rect.top * scale))
    right = max(left + 1, min(bounds[0], round((rect.left + rect.width) * scale)))
    bottom = max(top + 1, min(bounds[1], round((rect.top + rect.height) * scale)))
    return Rect(left, top, right - left, bottom - top)
