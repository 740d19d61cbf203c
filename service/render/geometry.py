"""Output geometry: pure arithmetic on sizes, no pixels.

Sizes here are upright (after EXIF orientation) and per frame, but for
``stored_rect``'s answer, which is in the pixels as the file stores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec import Flip, Gravity


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


# The operations' geometry: crop rectangles, EXIF orientations, exact sizes
# for a picture that is resized without thumbnail's own sizing, the cover
# window, and rotate/flip. Orientations are EXIF's 1-8: how the stored
# pixels are turned to be seen upright.


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle of whole pixels: its left and top edges and its size."""

    left: int
    top: int
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def clamp_rect(rect: Rect, size: tuple[int, int]) -> Rect | None:
    """``rect`` cut to an image of ``size``; None when nothing of it is inside."""
    right = min(rect.left + rect.width, size[0])
    bottom = min(rect.top + rect.height, size[1])
    if rect.left >= right or rect.top >= bottom:
        return None
    return Rect(rect.left, rect.top, right - rect.left, bottom - rect.top)


def stored_rect(rect: Rect, orientation: int, stored: tuple[int, int]) -> Rect:
    """Where ``rect`` of the upright picture lies in the pixels as stored
    (``stored`` is their size), for an EXIF ``orientation``."""
    width, height = stored
    right, bottom = rect.left + rect.width, rect.top + rect.height
    # Per orientation: the stored left and top edges of the upright rectangle.
    across, down = {
        1: (rect.left, rect.top),
        2: (width - right, rect.top),  # mirrored left to right
        3: (width - right, height - bottom),  # turned 180
        4: (rect.left, height - bottom),  # mirrored top to bottom
        5: (rect.top, rect.left),  # transposed
        6: (rect.top, height - right),  # stored turned 90 anticlockwise
        7: (width - bottom, height - right),  # transversed
        8: (width - bottom, rect.left),  # stored turned 90 clockwise
    }[orientation]
    if orientation >= 5:
        return Rect(across, down, rect.height, rect.width)
    return Rect(across, down, rect.width, rect.height)


def contain_size(picture: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``picture`` scaled, keeping its aspect ratio, to fit inside ``box``;
    never enlarged. The side that meets the box is exact, the other rounded."""
    scale = min(1.0, box[0] / picture[0], box[1] / picture[1])
    if scale == 1.0:
        return picture
    if box[0] / picture[0] <= box[1] / picture[1]:
        return box[0], max(1, min(box[1], round(picture[1] * scale)))
    return max(1, min(box[0], round(picture[0] * scale))), box[1]


def cover_size(box: tuple[int, int], picture: tuple[int, int]) -> tuple[int, int]:
    """``picture`` scaled, keeping its aspect ratio, just to cover ``box``
    (which ``scaled_box`` fitted inside it): one side is the box's, the
    other at least the box's."""
    if box[0] * picture[1] >= box[1] * picture[0]:  # the width meets the box
        return box[0], max(box[1], round(picture[1] * box[0] / picture[0]))
    return max(box[0], round(picture[0] * box[1] / picture[1])), box[1]


def window_offset(
    gravity: Gravity,
    focal_point: tuple[float, float] | None,
    covered: tuple[int, int],
    box: tuple[int, int],
) -> tuple[int, int]:
    """Where cover's ``box`` window lies in the ``covered`` picture: centred
    on the focal point (fractions of the picture) as far as the edges allow,
    else on the named edge of the axis that overflows (the other centred),
    else centred. (Smart gravities need pixels: not here.)"""
    spare = (covered[0] - box[0], covered[1] - box[1])
    if focal_point is not None:
        return (
            _clamp(round(focal_point[0] * covered[0] - box[0] / 2), 0, spare[0]),
            _clamp(round(focal_point[1] * covered[1] - box[1] / 2), 0, spare[1]),
        )
    left, top = spare[0] // 2, spare[1] // 2
    return {
        Gravity.NORTH: (left, 0),
        Gravity.SOUTH: (left, spare[1]),
        Gravity.WEST: (0, top),
        Gravity.EAST: (spare[0], top),
    }.get(gravity, (left, top))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@dataclass(frozen=True, slots=True)
class ShrinkDepth:
    """How much of a reduction libjpeg's DCT scaling leaves to the final
    Lanczos: at least ``halving`` after its shrink by 2, at least ``deeper``
    after 4 or 8."""

    halving: float
    deeper: float


# libvips' thumbnail leaves 2x after any factor: the block average of a
# shrink by 4 or 8 aliases.
LIBVIPS_DEPTH = ShrinkDepth(halving=2.0, deeper=2.0)
# The service halves from a 3x reduction on: libjpeg's shrink by 2 is a
# 4x4 inverse DCT of each block's lowest frequencies, not a block average.
# Measured over the benchmark's and the conformance corpus' JPEGs at
# reductions of 3.05, 3.5 and 3.95 (91 renders): SSIMULACRA2 of the q80
# JPEG against an exact reduction +0.6 at the median, -1.0 at worst; from
# 2.5x (a gap of 1.25) it was -1.0 at the median, so the gap stays 1.5.
SERVICE_DEPTH = ShrinkDepth(halving=1.5, deeper=2.0)
# --fast-shrink-on-load, as sharp's fastShrinkOnLoad and imgproxy: down to
# the output size itself.
FAST_DEPTH = ShrinkDepth(halving=1.0, deeper=1.0)


def jpeg_shrink(
    region: tuple[int, int], target: tuple[int, int], depth: ShrinkDepth = LIBVIPS_DEPTH
) -> int:
    """libjpeg's shrink-on-load factor (1, 2, 4 or 8) for a ``region`` that
    becomes ``target``: the largest that leaves ``depth``'s gap for the
    final Lanczos reduction, on the axis that needs more pixels."""
    reduction = min(region[0] / target[0], region[1] / target[1])
    for factor in (8, 4):
        if reduction >= depth.deeper * factor:
            return factor
    return 2 if reduction >= depth.halving * 2 else 1


def turned(size: tuple[int, int], rotate: int) -> tuple[int, int]:
    """A size after turning by ``rotate`` degrees (a multiple of 90)."""
    return (size[1], size[0]) if rotate % 180 else size


# Compass points after a clockwise quarter turn.
_CLOCKWISE = {
    Gravity.NORTH: Gravity.EAST,
    Gravity.EAST: Gravity.SOUTH,
    Gravity.SOUTH: Gravity.WEST,
    Gravity.WEST: Gravity.NORTH,
}
_ANTICLOCKWISE = {after: before for before, after in _CLOCKWISE.items()}


def unturned_gravity(gravity: Gravity, rotate: int, flip: Flip) -> Gravity:
    """The gravity to crop with before ``rotate`` (clockwise) and then
    ``flip``, so that the turned output keeps the edge ``gravity`` names:
    north of an output turned by 90 degrees is the west of the picture."""
    if gravity not in _CLOCKWISE:
        return gravity  # centre and the smart ones turn with the picture
    if flip in (Flip.HORIZONTAL, Flip.BOTH):
        gravity = {Gravity.EAST: Gravity.WEST, Gravity.WEST: Gravity.EAST}.get(gravity, gravity)
    if flip in (Flip.VERTICAL, Flip.BOTH):
        gravity = {Gravity.NORTH: Gravity.SOUTH, Gravity.SOUTH: Gravity.NORTH}.get(gravity, gravity)
    for _ in range(rotate // 90):
        gravity = _ANTICLOCKWISE[gravity]
    return gravity
