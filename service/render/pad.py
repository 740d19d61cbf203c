"""fit=pad: the contained image centred on a ``bg`` box of the exact size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyvips

from .frames import per_frame
from .geometry import centred_offset, scaled_box, turned

if TYPE_CHECKING:
    from .context import RenderContext


def pad(context: RenderContext) -> None:
    """Step: embed the image in its box (colour bands are the colour step's;
    an image with alpha keeps it here, and the flatten step flattens the
    whole canvas where the output has none)."""
    request = context.request
    if not request.pads or request.width is None or request.height is None:
        return
    image, frames = context.image, context.frames
    frame_height = image.height // frames
    box = scaled_box(request.width, request.height, turned(context.picture, request.rotate))
    red, green, blue, alpha = request.background
    background: list[float] = [red, green, blue]
    if image.hasalpha():
        background.append(alpha)
    elif context.output.has_alpha and alpha < 255:
        # A translucent bg needs an alpha band; an opaque image on an opaque
        # bg stays opaque, as an alpha band of 255 only makes the file bigger.
        image = image.bandjoin(255)
        background.append(alpha)
    left, top = centred_offset((image.width, frame_height), box)

    def embed(frame: pyvips.Image) -> pyvips.Image:
        return frame.embed(left, top, box[0], box[1], extend="background", background=background)

    context.image = per_frame(image, frames, embed) if frames > 1 else embed(image)
