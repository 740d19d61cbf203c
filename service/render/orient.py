"""rotate and flip: the picture turned clockwise, then mirrored.

In the contract they come before the fit (after EXIF orientation, the crop
and trim), but a quarter turn or a mirror commutes with resizing to within
rounding, so the render turns the resized image instead, which has the
output's pixels only, not the original's; the resize step fits the box
turned back (``resize``).

A mirror left to right keeps each row, so it streams. A turn or a mirror
top to bottom needs a whole frame at once, and straight from the
sequential pipeline each output row went back to the frame's first row (a
100-frame 1000x1000 GIF turned by 90 degrees ran past 60 s). So a still
image is computed into memory first, as libvips' thumbnail does for EXIF
orientation (the output's pixels: 0.7 MB for 400x600). (A tile cache for a
still image asked its pipeline for the whole image in one piece: slower,
and 82 MB against 57 MB for the copy, on a 6000x4000 JPEG to 400 px.)

An animation's strip can be too large to copy, so it is turned as it is
saved, in frame order (``turned_strip``). Each frame cut from a cache of
the strip and turned alone, then the frames joined again, cost a 100-frame
1000x1000 GIF 1.41x (to 300 px) and 1.54x (at its size) the plain
render's peak RSS, since each cached frame was asked of the resize in one
piece (a frame-sized buffer in every operation of the pipeline), and
twice its CPU to 300 px, since the joined frames read the cache out of
frame order and the GIF loader decoded from its first frame again and
again. Now the frames are laid side by side (``grid``, which reads the
strip in order) and that row is turned once: a quarter turn of the row
turns every frame and stacks them top to bottom again, in order. A half
turn is two quarter turns; a mirror top to bottom is a half turn and a
mirror left to right. The strip is cached in 16-line tiles (the resize is
asked for small pieces, in order) behind a cache of two whole frames
(which the turn reads in any order): about three frames of output pixels
per quarter turn. That GIF turned by 90 degrees: 1.03x the plain render's
peak RSS to 300 px and 1.11x at its size (1.22x for 180 degrees), and no
more CPU (docs/operations.md, "rotate").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyvips

from ..spec import Flip
from .frames import with_page_height

if TYPE_CHECKING:
    from .context import RenderContext

_STRIP_LINES = 16  # lines per tile of the strip's line cache


def orient(context: RenderContext) -> None:
    """Step: rotate (clockwise), then flip, each frame."""
    rotate, flip = context.request.rotate, context.request.flip
    if not rotate and flip is Flip.NONE:
        return
    if context.frames > 1:
        context.image = turned_strip(context.image, context.frames, rotate, flip)
        return
    image = context.image
    if rotate or flip in (Flip.VERTICAL, Flip.BOTH):
        context.deadline.watch(image)
        image = image.copy_memory()
    if rotate:
        image = image.rot(f"d{rotate}")
    if flip in (Flip.VERTICAL, Flip.BOTH):
        image = image.flipver()
    if flip in (Flip.HORIZONTAL, Flip.BOTH):
        image = image.fliphor()
    context.image = image


def turned_strip(strip: pyvips.Image, frames: int, rotate: int, flip: Flip) -> pyvips.Image:
    """Every frame of an animation strip turned ``rotate`` degrees
    clockwise, then flipped, the frames kept in order."""
    mirrored = flip in (Flip.HORIZONTAL, Flip.BOTH)
    if flip in (Flip.VERTICAL, Flip.BOTH):  # top to bottom: a half turn, mirrored
        rotate = (rotate + 180) % 360
        mirrored = not mirrored
    if rotate == 270:
        # A quarter turn of the frame mirrored both ways (a mirror left to
        # right streams; top to bottom, of the row of frames).
        strip = _quarter_turn(strip.fliphor(), frames, mirror_first=True)
    else:
        for _ in range(rotate // 90):
            strip = _quarter_turn(strip, frames)
    return strip.fliphor() if mirrored else strip


def _quarter_turn(strip: pyvips.Image, frames: int, *, mirror_first: bool = False) -> pyvips.Image:
    """Each frame of the strip turned a quarter clockwise (mirrored top to
    bottom first with ``mirror_first``), stacked in the same order."""
    page_height = strip.height // frames
    lines = strip.tilecache(
        tile_width=strip.width,
        tile_height=_STRIP_LINES,
        max_tiles=math.ceil(page_height / _STRIP_LINES) + 2,
        access="random",
        threaded=True,
    )
    whole_frames = lines.tilecache(
        tile_width=strip.width,
        tile_height=page_height,
        max_tiles=2,
        access="random",
        threaded=True,
    )
    row = whole_frames.grid(page_height, frames, 1)  # frame after frame, left to right
    if mirror_first:
        row = row.flipver()  # each frame of the row, in place
    return with_page_height(row.rot90(), strip.width)
