"""Flatten: an image with alpha, written to a format without it (JPEG),
composited onto ``bg`` (white unless the request says otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import RenderContext


def flatten(context: RenderContext) -> None:
    """Step: drop the alpha band onto the background where the output has none."""
    image = context.image
    if context.output.has_alpha or not image.hasalpha():
        return
    red, green, blue, _ = context.request.background
    if image.bands == 2:  # grey onto grey (colour would have had colour bands already)
        context.image = image.flatten(background=[red])
        return
    context.image = image.flatten(background=[red, green, blue])
