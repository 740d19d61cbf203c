"""Resize: shrink-on-load to the requested geometry; the fit modes live here.

Every path goes through libvips' ``thumbnail`` on a ``Source``: shrink-on-
load where the format has it (JPEG's DCT scaling, WebP's, HEIF's thumbnails),
sequential access, and never a full-size decode of a large original into
memory; a crop reads its region the same way (``crop.load_region``), and so
does a whole JPEG that the policy's depth shrinks deeper on load than
thumbnail would (``geometry.SERVICE_DEPTH``). We never upscale. Box
arithmetic is in ``geometry``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pyvips

from ..spec import Fit, Gravity
from . import colour
from .crop import JPEG_SHRINK_LOADERS, load_region
from .frames import per_frame
from .geometry import (
    Rect,
    contain_size,
    cover_prescale,
    cover_size,
    crop_anchor,
    jpeg_shrink,
    scaled_box,
    unturned_gravity,
    window_offset,
)
from .libvips import LOAD_OPTIONS
from .mezzanine import covers

if TYPE_CHECKING:
    from .context import RenderContext
    from .header import HeaderFacts

# libvips' largest coordinate: "unconstrained" for one side of the box.
_UNBOUNDED = 10_000_000

# Loaders that decode every line at full width (no shrink-on-load), and the
# reduction from which lines are reduced first (see _reduces_lines_first).
_FULL_WIDTH_LOADERS = frozenset({"pngload_source"})
_LINES_FIRST_MIN_FACTOR = 4
_REDUCE_GAP = 2.0  # thumbnail's own: a box shrink, then Lanczos for the last 2-4x

# The largest shrunk animation strip that cover and fill shape from memory:
# an animated avatar, 200x200 x 100 frames, is 16 MB.
_STRIP_IN_MEMORY_BYTES = 32 * 2**20


def resize(context: RenderContext) -> None:
    """Step: the picture (the original, or its crop), shrunk on load to the
    box its fit mode asks for.

    rotate and flip come before the fit in meaning, but the orient step
    turns the resized image, which has fewer pixels, and gives the same
    output: so the box is turned back here (its sides swapped for a quarter
    turn, a compass gravity turned with the picture). A focal point is in
    the picture's own axes already.
    """
    request = context.request
    width, height = request.width, request.height
    if request.rotate % 180:
        width, height = height, width
    gravity = unturned_gravity(request.gravity, request.rotate, request.flip)
    if context.region is not None or request.focal_point is not None:
        context.image = _fit_exactly(context, width, height, gravity)
        return
    if request.fit is Fit.CONTAIN or width is None or height is None:
        if width is None and height is None:
            # No size asked: the original's, but never beyond the output limit.
            width = height = context.policy.max_output_size
        context.image = _thumbnail(context, (width or _UNBOUNDED, height or _UNBOUNDED))
        return
    upright = context.picture
    box = scaled_box(width, height, upright)
    if request.fit is Fit.PAD:
        context.image = _thumbnail(context, box)  # the pad step makes it the box
    elif context.frames > 1:
        context.image = _shape_animation(context, box, gravity)
    elif request.fit is Fit.FILL:
        context.image = _thumbnail(context, box, size="force")
    else:
        context.image = _thumbnail(context, box, crop=crop_anchor(gravity, box, upright))


def _fit_exactly(
    context: RenderContext, width: int | None, height: int | None, gravity: Gravity
) -> pyvips.Image:
    """The fit modes by sizes of our own, for a crop (thumbnail cannot load
    a region of the original) and for a focal point (nor place its cover
    window): the picture resized to exactly the size its fit mode gives it,
    and for cover the box's window cut from it."""
    request, picture = context.request, context.picture
    if request.fit is Fit.CONTAIN or width is None or height is None:
        if width is None and height is None:
            width = height = context.policy.max_output_size
        return _load(context, contain_size(picture, (width or _UNBOUNDED, height or _UNBOUNDED)))
    box = scaled_box(width, height, picture)
    if request.fit is Fit.PAD:
        return _load(context, contain_size(picture, box))
    if request.fit is Fit.FILL:
        return _load(context, box)
    return _cover_window(context, _load(context, cover_size(box, picture)), box, gravity)


def _load(context: RenderContext, size: tuple[int, int]) -> pyvips.Image:
    """The picture at exactly ``size`` (per frame)."""
    if context.region is not None:
        return load_region(context, context.region, size)
    return _thumbnail(context, size, size="force")


def _cover_window(
    context: RenderContext, covered: pyvips.Image, box: tuple[int, int], gravity: Gravity
) -> pyvips.Image:
    """cover's ``box`` from a picture resized just to cover it: on the focal
    point, a named edge or the centre, the same window in every frame."""
    frames = context.frames
    if gravity in (Gravity.ATTENTION, Gravity.ENTROPY):
        if frames == 1:
            # smartcrop reads the picture more than once: from memory, as
            # thumbnail does, and computed here under the deadline's watch.
            context.deadline.watch(covered)
            return covered.copy_memory().smartcrop(box[0], box[1], interesting=gravity.value)
        gravity = Gravity.CENTRE  # a smart crop per frame would jump between frames
    left, top = window_offset(
        gravity, context.request.focal_point, (covered.width, covered.height // frames), box
    )
    if frames == 1:
        return covered.crop(left, top, box[0], box[1])
    return per_frame(covered, frames, lambda frame: frame.crop(left, top, box[0], box[1]))


def _shape_animation(
    context: RenderContext, box: tuple[int, int], gravity: Gravity
) -> pyvips.Image:
    """cover and fill for an animation: thumbnail's crop and force would act
    on the whole frame strip, so shrink the strip first, then shape each
    frame."""
    request, frames = context.request, context.frames
    upright = context.picture
    strip = _thumbnail(context, cover_prescale(box, upright))
    if strip.width * strip.height * strip.bands <= _STRIP_IN_MEMORY_BYTES:
        # Each frame's shaping reads a little of its neighbours, and the
        # GIF loader decodes from the start again for each step back:
        # 100 frames of 1000x1000 to 50x50 took 7.9 s, 2.0 s from memory.
        # The copy is computed here, so the deadline watches it too.
        context.deadline.watch(strip)
        strip = strip.copy_memory()
    if request.fit is Fit.COVER:
        # A smart crop per frame would make the crop jump between frames.
        smart = gravity in (Gravity.ATTENTION, Gravity.ENTROPY)
        anchor = "centre" if smart else crop_anchor(gravity, box, upright)
        return per_frame(strip, frames, lambda frame: _cover_frame(frame, box, anchor))
    return per_frame(
        strip, frames, lambda frame: frame.thumbnail_image(box[0], height=box[1], size="force")
    )


def _thumbnail(
    context: RenderContext,
    box: tuple[int, int],
    *,
    size: str = "down",  # thumbnail upscales by default; we never do
    crop: str | None = None,
) -> pyvips.Image:
    facts, frames = context.facts, context.frames
    source = pyvips.Source.new_from_descriptor(context.source_fd)
    load_options = LOAD_OPTIONS + (f",n={frames}" if frames > 1 else "")
    # Any: pyvips' stubs type each option; this dict holds a varying few.
    options: dict[str, Any] = colour.thumbnail_options(facts.needs_colour_management)
    if crop is not None:
        options["crop"] = crop
    if context.decoded is not None:  # decoded (and trimmed) by an earlier step
        return context.decoded.thumbnail_image(box[0], height=box[1], size=size, **options)
    # Once: in the halving band it sizes a stand-in pipeline (0.7 ms).
    deeper_target = _deeper_shrink_target(context, box, size, crop)
    from_mezzanine = _thumbnail_from_mezzanine(context, box, size, crop, deeper_target)
    if from_mezzanine is not None:
        return from_mezzanine
    if deeper_target is not None:
        image = load_region(context, Rect(0, 0, facts.width, facts.height), deeper_target)
        if crop is not None:  # the picture covers the box: cut the window
            image = image.thumbnail_image(box[0], height=box[1], crop=crop)
        return image
    if frames == 1 and crop is None and size == "down" and _reduces_lines_first(facts, box):
        return _thumbnail_lines_first(source, options, box, facts)
    return pyvips.Image.thumbnail_source(
        source, box[0], height=box[1], size=size, option_string=load_options, **options
    )


def _thumbnail_from_mezzanine(
    context: RenderContext,
    box: tuple[int, int],
    size: str,
    crop: str | None,
    deeper_target: tuple[int, int] | None,
) -> pyvips.Image | None:
    """What ``_thumbnail`` makes of the whole picture, from the original's
    mezzanine (render/mezzanine.py) when it holds enough pixels for it;
    None otherwise. The size is the one the direct render gives the
    original (its facts: ``deeper_target``, the deeper shrink's, when it
    applies), never the mezzanine's own rounding; the mezzanine is sRGB, so
    no colour options."""
    mezzanine, facts = context.mezzanine, context.facts
    if mezzanine is None or context.frames > 1:
        return None
    picture = (facts.width, facts.height)
    # The size the direct render gives, to the pixel: the deeper shrink's, or
    # for contain libvips' thumbnail's own rounding.
    need = deeper_target
    if need is None:
        contain = crop is None and size != "force"
        need = _direct_size(context, box) if contain else _whole_size(picture, box, size, crop)
    if not covers(mezzanine, facts, Rect(0, 0, *picture), need):
        return None
    context.from_mezzanine = True
    if crop is not None:
        return mezzanine.thumbnail_image(box[0], height=box[1], crop=crop)
    return mezzanine.thumbnail_image(need[0], height=need[1], size="force")


def _deeper_shrink_target(
    context: RenderContext, box: tuple[int, int], size: str, crop: str | None
) -> tuple[int, int] | None:
    """The size a single-frame JPEG is loaded and resized to for ``box``
    (before any crop) when the policy's depth lets libjpeg shrink it deeper
    on load than libvips' thumbnail would (geometry.SERVICE_DEPTH, or
    ``--fast-shrink-on-load``'s); None otherwise, and thumbnail renders it."""
    facts = context.facts
    if context.frames > 1 or facts.loader not in JPEG_SHRINK_LOADERS:
        return None
    picture = (facts.width, facts.height)
    target = _whole_size(picture, box, size, crop)
    own = jpeg_shrink(picture, target)
    if jpeg_shrink(picture, target, context.policy.jpeg_shrink_depth) <= own:
        return None
    if own == 1 and crop is None and size != "force":
        # thumbnail would decode every pixel: its size is a stand-in's,
        # whose rounding (ties up) the arithmetic's (ties to even) misses
        # by a pixel at some widths.
        return _plain_thumbnail_size(facts, box)
    return target


def _whole_size(
    picture: tuple[int, int], box: tuple[int, int], size: str, crop: str | None
) -> tuple[int, int]:
    """The size ``_thumbnail`` resizes the whole ``picture`` to for ``box``
    before any crop, by arithmetic (``_direct_size`` gives libvips'
    thumbnail's own, which may differ by a pixel)."""
    if crop is not None:
        return cover_size(box, picture)  # thumbnail's crop covers the box, then cuts it
    if size == "force":
        return box
    return contain_size(picture, box)


def _direct_size(context: RenderContext, box: tuple[int, int]) -> tuple[int, int]:
    """The size plain thumbnail gives the original for ``box``, from the
    pipeline it builds (headers only: no pixel is computed). Its shrink-on-
    load rounds the loaded size (libjpeg's, libwebp's, HEIF's thumbnail),
    so a stand-in of the original's size gives a pixel more or less."""
    facts = context.facts
    if facts.loader in _FULL_WIDTH_LOADERS or facts.loader == "tiffload_source":
        return _plain_thumbnail_size(facts, box)  # no shrink-on-load: the stand-in's size
    source = pyvips.Source.new_from_descriptor(context.source_fd)
    probe = pyvips.Image.thumbnail_source(
        source, box[0], height=box[1], size="down", option_string=LOAD_OPTIONS
    )
    size = probe.width, probe.height
    del probe, source
    os.lseek(context.source_fd, 0, os.SEEK_SET)
    return size


def _reduces_lines_first(facts: HeaderFacts, box: tuple[int, int]) -> bool:
    """Whether to reduce along each line before thumbnail does the rest.

    For originals that cannot shrink on load, thumbnail reduces down the
    image first, so it buffers full-width lines: a 46 MP PNG (9042 px wide)
    peaked 50 MiB above idle. Reducing along the lines first, with the same
    filter thumbnail uses (Lanczos 3 after a box shrink, gap 2), keeps those
    buffers narrow: 21 MiB, and the same output to rounding (51.0 dB from an
    exact Lanczos resize against thumbnail's 51.1; 54 dB from thumbnail's).
    Opaque images only: thumbnail premultiplies alpha before filtering.
    """
    if facts.loader not in _FULL_WIDTH_LOADERS or facts.has_alpha:
        return False
    return facts.stored_width >= _LINES_FIRST_MIN_FACTOR * box[0]


def _thumbnail_lines_first(
    source: pyvips.Source, options: dict[str, Any], box: tuple[int, int], facts: HeaderFacts
) -> pyvips.Image:
    expected = _plain_thumbnail_size(facts, box)
    image = pyvips.Image.new_from_source(source, LOAD_OPTIONS, access="sequential")
    line_target = expected[1] if facts.swaps_axes else expected[0]
    if image.width > line_target:
        image = image.reduceh(image.width / line_target, gap=_REDUCE_GAP)
    # The lines fit now: thumbnail reduces down the image, rotates and
    # converts colour exactly as on the plain path.
    return image.thumbnail_image(expected[0], height=expected[1], size="force", **options)


def _plain_thumbnail_size(facts: HeaderFacts, box: tuple[int, int]) -> tuple[int, int]:
    """The exact size plain thumbnail gives an original without shrink-on-
    load, so both paths produce the same size. thumbnail sizes an image from
    its dimensions and orientation alone: asked of a stand-in of the same
    shape (lazy, never computed), not of the original, whose sequential
    source a second pipeline on it would read out of order."""
    stored_height = facts.width if facts.swaps_axes else facts.height
    stand_in = pyvips.Image.black(facts.stored_width, stored_height)
    if facts.swaps_axes:
        stand_in = stand_in.copy()
        stand_in.set_type(pyvips.GValue.gint_type, "orientation", 6)
    sized = stand_in.thumbnail_image(box[0], height=box[1], size="down")
    return sized.width, sized.height


def _cover_frame(frame: pyvips.Image, box: tuple[int, int], anchor: str) -> pyvips.Image:
    """One frame of an animated cover. The strip was shrunk so that each
    frame covers the box, so this is a crop. ``thumbnail_image(crop=...)``
    gives the same, but computes the frame's pixels while the pipeline is
    being built, and a GIF frame needs every frame before it decoded: 100
    frames of 1000x1000 took 16 s that way (frames squared), and ran on
    past the render's deadline, which only stops a running pipeline."""
    if frame.width < box[0] or frame.height < box[1]:  # a rounding pixel short
        return frame.thumbnail_image(box[0], height=box[1], crop=anchor)
    spare = (frame.width - box[0], frame.height - box[1])
    left, top = {"low": (0, 0), "high": spare}.get(anchor, (spare[0] // 2, spare[1] // 2))
    return frame.crop(left, top, box[0], box[1])
