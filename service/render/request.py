"""What a render is asked to do: the process's policy and one request's wishes.

Pure data, no libvips. ``RenderPolicy`` is built once per process from the
settings (``server.app.create_app``); ``RenderRequest`` is what one request
adds, already validated and with its format negotiated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..formats import DEFAULT_AUTO_QUALITY_TARGET, OutputFormat, Quality
from ..spec import Crop, Fit, Flip, Gravity
from .geometry import SERVICE_DEPTH, ShrinkDepth

if TYPE_CHECKING:
    from .overlay import OverlayLibrary


@dataclass(frozen=True, slots=True)
class RenderPolicy:
    """Fixed for the life of a process: limits, defaults, encoder effort."""

    quality: Mapping[OutputFormat, Quality]  # the default q per output format
    max_output_size: int
    max_source_pixels: int
    avif_effort: int
    max_frames: int = 100
    # q=auto's SSIMULACRA2 target (render/auto_quality.py).
    auto_quality_target: float = DEFAULT_AUTO_QUALITY_TARGET
    # Seconds from the start of the render (queue time is not counted).
    timeout_seconds: float = 20.0
    allow_svg: bool = False
    # The largest whole-image decode one original may need (limits).
    max_decode_bytes: int | None = None
    # The original's creator and copyright fields survive (rights).
    keep_copyright: bool = True
    # How much of a JPEG's reduction libjpeg's DCT scaling leaves to
    # Lanczos (geometry.jpeg_shrink); FAST_DEPTH for --fast-shrink-on-load.
    jpeg_shrink_depth: ShrinkDepth = SERVICE_DEPTH
    # --overlays, loaded (None: none configured).
    overlays: OverlayLibrary | None = None


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """What one request asks for, validated and resolved."""

    width: int | None
    height: int | None
    format: OutputFormat | None  # None: the original's, or the fallback
    background: tuple[int, int, int, int]
    quality: Quality | None = None  # the request's q; None: the policy's per format
    fit: Fit = Fit.CONTAIN
    gravity: Gravity = Gravity.CENTRE
    # format=auto chose the format; AVIF is not used for animations, which
    # get animated_fallback instead (None: the original's own format).
    negotiated: bool = False
    animated_fallback: OutputFormat | None = None
    # The operations (service/spec.py says what each means; the steps, in
    # pipeline.STEPS's order, apply them).
    crop: Crop | None = None
    rotate: int = 0
    flip: Flip = Flip.NONE
    focal_point: tuple[float, float] | None = None
    trim: int | None = None  # the difference threshold of a uniform border to remove
    blur: float | None = None  # sigma in output pixels
    sharpen: float | None = None  # sigma in output pixels
    overlay: str | None = None  # the name of one of the policy's overlays

    @property
    def edits_pixels(self) -> bool:
        """Any operation above but the focal point (which only places a
        cover's window): the output is not the original's pixels, resized
        or not. A new operation belongs here too (render/encoding.py)."""
        return (
            self.crop is not None
            or self.trim is not None
            or self.rotate != 0
            or self.flip is not Flip.NONE
            or self.blur is not None
            or self.sharpen is not None
            or self.overlay is not None
        )

    @property
    def pads(self) -> bool:
        """fit=pad with a whole box: the output is exactly the box."""
        return self.fit is Fit.PAD and self.width is not None and self.height is not None


def quality_for(output: OutputFormat, policy: RenderPolicy, request: RenderRequest) -> Quality:
    """The q to encode ``output`` with: the request's, else the default
    (``auto``: the auto_quality step's search chooses it)."""
    return policy.quality[output] if request.quality is None else request.quality
