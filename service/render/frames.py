"""Animation strips: libvips holds an animation's frames stacked top to
bottom in one image, with its ``page-height`` field saying where each ends.
A step that must act on each frame alone (a crop, an embed) goes through
``per_frame``."""

from __future__ import annotations

from collections.abc import Callable

import pyvips


def per_frame(
    image: pyvips.Image, frames: int, shape: Callable[[pyvips.Image], pyvips.Image]
) -> pyvips.Image:
    """Apply ``shape`` to each frame of an animation strip and restack them."""
    page_height = image.height // frames
    shaped = [
        shape(image.crop(0, index * page_height, image.width, page_height))
        for index in range(frames)
    ]
    joined = pyvips.Image.arrayjoin(shaped, across=1)
    return with_page_height(joined, shaped[0].height)


def with_page_height(image: pyvips.Image, page_height: int) -> pyvips.Image:
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", page_height)
    return image


def frame_by_frame(
    image: pyvips.Image, frames: int, shape: Callable[[pyvips.Image], pyvips.Image]
) -> pyvips.Image:
    """``shape`` applied to each frame of an animation, or to a still image."""
    return per_frame(image, frames, shape) if frames > 1 else shape(image)
