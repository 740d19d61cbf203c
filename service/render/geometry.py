"""Output geometry: pure arithmetic on sizes, no pixels.

Sizes here are upright (after EXIF orientation) and per frame.
"""

from __future__ import annotations

import math

from ..spec import Gravity


def scaled_box(width: int, height: int, original: tuple[int, int]) -> tuple[int, int]:
    """The ``width x height`` box for cover/fill/pad, shrunk (keeping the box's
    aspect ratio) until it fits inside the original: we never upscale, and
    the caller still gets the shape it asked for."""
    source_width, source_height = original
    scale = min(1.0, source_width / width, source_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def cover_prescale(box: tuple[int, int], original: tuple[int, int]) -> tuple[int, int]:
    """A box that, fitted with contain, gives frames just covering ``box``."""
    scale = max(box[0] / original[0], box[1] / original[1])
    return (
        min(original[0], math.ceil(original[0] * scale)),
        min(original[1], math.ceil(original[1] * scale)),
    )


def crop_anchor(gravity: Gravity, box: tuple[int, int], original: tuple[int, int]) -> str:
    """libvips' ``crop`` value for cover: a compass point keeps the named
    edge on the axis that overflows and centres the other (libvips' ``low``
    and ``high`` apply to whichever axis is cropped)."""
    if gravity in (Gravity.ATTENTION, Gravity.ENTROPY, Gravity.CENTRE):
        return str(gravity.value)
    overflows_horizontally = original[0] * box[1] > box[0] * original[1]
    if overflows_horizontally:
        return {Gravity.WEST: "low", Gravity.EAST: "high"}.get(gravity, "centre")
    return {Gravity.NORTH: "low", Gravity.SOUTH: "high"}.get(gravity, "centre")


def centred_offset(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[int, int]:
    """Where to place ``inner`` centred in ``outer`` (pad)."""
    return (outer[0] - inner[0]) // 2, (outer[1] - inner[1]) // 2
