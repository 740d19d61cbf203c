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
orientation (the output's pixels: 0.7 MB for 400x600); an animation, whose
strip can be large, is cached one frame at a time (a tile per frame, two
held), lazily while it is saved: 4.0 s against 4.2 s unturned for that
GIF, and 124 MB against 70 MB at peak. (A tile cache for a still image
asked its pipeline for the whole image in one piece: slower, and 82 MB
against 57 MB for the copy, on a 6000x4000 JPEG to 400 px.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyvips

from ..spec import Flip
from .frames import per_frame

if TYPE_CHECKING:
    from .context import RenderContext


def orient(context: RenderContext) -> None:
    """Step: rotate (clockwise), then flip, each frame."""
    rotate, flip = context.request.rotate, context.request.flip
    if not rotate and flip is Flip.NONE:
        return
    image, frames = context.image, context.frames
    flips_vertically = flip in (Flip.VERTICAL, Flip.BOTH)
    if (rotate or flips_vertically) and frames == 1:
        context.deadline.watch(image)
        image = image.copy_memory()
    elif rotate or flips_vertically:
        image = image.tilecache(
            tile_width=image.width,
            tile_height=image.height // frames,
            max_tiles=2,
            access="random",
            threaded=True,
        )

    def turn(frame: pyvips.Image) -> pyvips.Image:
        if rotate:
            frame = frame.rot(f"d{rotate}")
        if flips_vertically:
            frame = frame.flipver()
        return frame

    if rotate or flips_vertically:
        image = per_frame(image, frames, turn) if frames > 1 else turn(image)
    if flip in (Flip.HORIZONTAL, Flip.BOTH):
        image = image.fliphor()  # each row mirrored: every frame at once
    context.image = image
