"""The one object a render's steps share: what was asked, what the header
said, where to read and write, and the image so far."""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from ..formats import OutputFormat
from .failures import Deadline
from .geometry import Rect
from .header import HeaderFacts
from .request import RenderPolicy, RenderRequest


@dataclass(slots=True)
class RenderContext:
    """Mutable, owned by one render in one thread; each step reads what it
    needs and replaces ``image`` (or sets ``output`` and ``frames``)."""

    policy: RenderPolicy
    request: RenderRequest
    facts: HeaderFacts
    source_fd: int  # the original, open; steps that load make their own Source
    target_fd: int  # where the encoded image is written
    deadline: Deadline
    # Set by the header step (choose_output), before any other.
    output: OutputFormat = OutputFormat.JPEG
    frames: int = 1
    # Set by the crop step: the rectangle of the upright original the render
    # reads, per frame (None: all of it). The resize step loads only that.
    region: Rect | None = None
    # The metadata the saver writes: set by the rights step, none otherwise.
    keep: str = "none"
    # The original decoded whole, upright, by a step before the resize
    # (trim, which also replaces ``facts``' size with this image's): the
    # resize step shrinks it instead of loading the original.
    decoded: pyvips.Image | None = None
    # The original's mezzanine (render/mezzanine.py: upright, 8-bit sRGB,
    # smaller), when the store holds one: the resize step reads from it
    # where it holds enough pixels, and says so in ``from_mezzanine``.
    mezzanine: pyvips.Image | None = None
    from_mezzanine: bool = False
    # Set by the auto_quality step for q=auto: the q chosen, and the bytes
    # of its encode, which the save step writes as they are (None: encode).
    quality: int | None = None
    encoded: bytes | None = None
    _image: pyvips.Image | None = None

    @property
    def picture(self) -> tuple[int, int]:
        """What the fit modes fit, upright, per frame and before rotate:
        the cropped region, or the whole original."""
        if self.region is not None:
            return self.region.size
        return self.facts.width, self.facts.height

    @property
    def image(self) -> pyvips.Image:
        """The image so far: made by the resize step, replaced by each later one."""
        if self._image is None:
            raise RuntimeError("a step read the image before the resize step made it")
        return self._image

    @image.setter
    def image(self, image: pyvips.Image) -> None:
        self._image = image
