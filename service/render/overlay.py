"""Overlay: a named image of ``--overlays`` (a watermark) on the final canvas.

After pad, so the overlay is placed on the delivered image, whatever the
fit; before flatten, so an output without alpha flattens the overlay with
the rest. The overlay is sized to its ``width`` fraction of the output's
width (its aspect kept, never beyond the canvas less its margins: on a
canvas too small for the margins they shrink, so it is always applied),
placed at its gravity, and composited "over" with its ``opacity`` times its
own alpha (premultiplied, in float, rounded once to 8 bits). Every pixel
outside the overlay's rectangle is the canvas's own, untouched. A grey
canvas stays grey (the overlay is made grey); a canvas without alpha gets
none. Animations: every frame, at the same place.

An ``OverlayLibrary`` per process holds each overlay's encoded bytes (read
once at start: ``service.overlays``) and a bounded LRU of its resized,
decoded copies per output size, built in the render thread that first
needs one. ``check_overlay`` is the start-up check: the original's header
limits, then one whole render at the largest size the overlay can be
asked for, so that a hostile or broken file stops the start, never a request.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyvips

from ..errors import UnprocessableImage
from ..formats import OutputFormat
from ..overlays import OverlayFile
from . import colour
from .failures import describe
from .frames import with_page_height
from .header import HeaderFacts, read_facts
from .limits import check
from .request import RenderPolicy

if TYPE_CHECKING:
    from .context import RenderContext

# Resized overlays kept per process: an overlay at a few dozen output
# sizes (a site's srcset widths times its overlays), and at most this many
# bytes of them (a 1000x250 logo ready to blend, 16 bytes a pixel: 4 MB).
MAX_SIZES = 32
MAX_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Mark:
    """An overlay at one size, ready to blend (``over``), in memory: what
    a render does with it is two operations per pixel of its rectangle.

    ``inverse`` is 1 - its alpha (times its opacity), 0-1; ``addend`` is
    its colour premultiplied by that alpha, plus 0.5 for a canvas without
    alpha (so that a cast to 8 bits rounds), with 255 x alpha as a last
    band for a canvas with alpha."""

    inverse: pyvips.Image
    addend: pyvips.Image
    for_alpha: bool  # made for a canvas with alpha

    @property
    def bytes(self) -> int:
        return int(4 * self.inverse.width * self.inverse.height * (1 + self.addend.bands))

    def layer(self, canvas: tuple[int, int], spot: Placement, frames: int) -> Mark:
        """The mark as one layer over a whole animation strip: at ``spot``
        in each of ``frames`` frames of ``canvas`` px, blending to nothing
        elsewhere (lazy: never held in memory)."""
        around = [0.0] * self.addend.bands if self.for_alpha else [0.5] * self.addend.bands

        def framed(image: pyvips.Image, background: list[float]) -> pyvips.Image:
            placed = image.embed(
                spot.left, spot.top, *canvas, extend="background", background=background
            )
            return placed.replicate(1, frames)

        return Mark(framed(self.inverse, [1.0]), framed(self.addend, around), self.for_alpha)


@dataclass(frozen=True, slots=True)
class Placement:
    """The overlay's rectangle on one frame of the canvas."""

    left: int
    top: int
    width: int
    height: int


def placement(canvas: tuple[int, int], native: tuple[int, int], overlay: OverlayFile) -> Placement:
    """Where ``overlay`` (``native`` px, upright) goes on a ``canvas`` frame:
    ``width`` of the canvas's width, aspect kept, inside the canvas less
    its margins (shrunk on a canvas too small for them), at its gravity."""
    canvas_width, canvas_height = canvas
    margin = min(overlay.margin, (canvas_width - 1) // 2, (canvas_height - 1) // 2)
    room_width, room_height = canvas_width - 2 * margin, canvas_height - 2 * margin
    width = min(room_width, max(1, round(overlay.width * canvas_width)))
    height = max(1, round(width * native[1] / native[0]))
    if height > room_height:
        height = room_height
        width = min(room_width, max(1, round(height * native[0] / native[1])))
    horizontal, vertical = overlay.gravity.horizontal, overlay.gravity.vertical
    left = {"west": margin, "east": canvas_width - margin - width}.get(
        horizontal, (canvas_width - width) // 2
    )
    top = {"north": margin, "south": canvas_height - margin - height}.get(
        vertical, (canvas_height - height) // 2
    )
    return Placement(left, top, width, height)


class OverlayLibrary:
    """The process's overlays, and their resized copies (thread-safe)."""

    def __init__(
        self,
        overlays: Mapping[str, OverlayFile],
        *,
        max_sizes: int = MAX_SIZES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._overlays = dict(overlays)
        # Read once (headers only): the upright size, and whether it needs
        # its profile converted, of each overlay.
        self._facts = {name: facts_of(overlay.data) for name, overlay in overlays.items()}
        self._max_sizes = max_sizes
        self._max_bytes = max_bytes
        self._sizes: OrderedDict[tuple[str, int, int, bool, bool], Mark] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.builds = 0  # resized copies made (tests count them)

    def __contains__(self, name: str) -> bool:
        return name in self._overlays

    def overlay(self, name: str) -> OverlayFile:
        return self._overlays[name]

    def native_size(self, name: str) -> tuple[int, int]:
        facts = self._facts[name]
        return facts.width, facts.height

    def mark(self, name: str, width: int, height: int, *, grey: bool, for_alpha: bool) -> Mark:
        """``name`` at ``width`` x ``height``, ready to blend over a grey
        or colour canvas, with alpha or without."""
        key = (name, width, height, grey, for_alpha)
        with self._lock:
            cached = self._sizes.get(key)
            if cached is not None:
                self._sizes.move_to_end(key)
                return cached
        # Built outside the lock: two renders may both build one size, once.
        overlay = self._overlays[name]
        image = build(overlay, self._facts[name], (width, height), grey=grey)
        built = ready(image, overlay.opacity, for_alpha=for_alpha)
        with self._lock:
            self.builds += 1
            if key not in self._sizes:
                self._sizes[key] = built
                self._bytes += built.bytes
            while len(self._sizes) > 1 and (
                len(self._sizes) > self._max_sizes or self._bytes > self._max_bytes
            ):
                _, evicted = self._sizes.popitem(last=False)
                self._bytes -= evicted.bytes
        return built

    @property
    def sizes(self) -> int:
        """Resized copies held now."""
        with self._lock:
            return len(self._sizes)


def facts_of(data: bytes) -> HeaderFacts:
    """The header facts of an overlay's bytes, read as an original's are
    (the same loader allow-list; SVG never)."""
    descriptor = os.memfd_create("overlay", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, data)
        os.lseek(descriptor, 0, os.SEEK_SET)
        return read_facts(descriptor, allow_svg=False)
    finally:
        os.close(descriptor)


def build(
    overlay: OverlayFile, facts: HeaderFacts, size: tuple[int, int], *, grey: bool
) -> pyvips.Image:
    """The overlay at exactly ``size`` (upright, upscaled if need be), 8-bit
    sRGB (or grey) with alpha, computed into memory."""
    source = pyvips.Source.new_from_memory(overlay.data)
    image = pyvips.Image.thumbnail_source(
        source,
        size[0],
        height=size[1],
        size="force",
        option_string="fail_on=truncated",
        **colour.thumbnail_options(facts.needs_colour_management),
    )
    if not (image.format == "uchar" and str(image.interpretation) == "srgb"):
        image = image.colourspace("srgb")  # grey, 16-bit: 8-bit sRGB
    if not image.hasalpha():
        image = image.bandjoin(255)
    if grey:
        image = image.colourspace("b-w")
    return image.copy_memory()


def ready(image: pyvips.Image, opacity: float, *, for_alpha: bool) -> Mark:
    """``image`` (8 bits with alpha, from ``build``) as a ``Mark``."""
    colour_bands = image.bands - 1
    alpha = image[colour_bands] * (opacity / 255)  # 0-1
    colour = image[0:colour_bands] * alpha
    addend = colour.bandjoin(alpha * 255) if for_alpha else colour + 0.5
    return Mark((1 - alpha).copy_memory(), addend.copy_memory(), for_alpha)


def check_overlay(
    overlay: OverlayFile, *, max_output_size: int, max_source_pixels: int, max_decode_bytes: int
) -> None:
    """Start-up: refuse (``UnprocessableImage``, one line) an overlay that
    is no accepted image, is over the originals' limits, or fails to render
    at the largest size an output of ``max_output_size`` asks of it."""
    try:
        _render_once(overlay, max_output_size, max_source_pixels, max_decode_bytes)
    except UnprocessableImage as refusal:  # worded for originals
        message = refusal.message.replace("the original", "the image")
        raise type(refusal)(message) from None


def _render_once(
    overlay: OverlayFile, max_output_size: int, max_source_pixels: int, max_decode_bytes: int
) -> None:
    facts = facts_of(overlay.data)
    policy = RenderPolicy(
        quality={OutputFormat.JPEG: 80},
        max_output_size=max_output_size,
        max_source_pixels=max_source_pixels,
        avif_effort=0,
        max_decode_bytes=max_decode_bytes,
    )
    check(facts, policy, frames=1)
    largest = placement((max_output_size, max_output_size), (facts.width, facts.height), overlay)
    try:
        build(overlay, facts, (largest.width, largest.height), grey=False)
    except (pyvips.Error, UnicodeDecodeError) as error:
        raise UnprocessableImage(describe(error)) from None


def overlay(context: RenderContext) -> None:
    """Step: the request's overlay, composited on every frame of the canvas."""
    name = context.request.overlay
    if name is None:
        return
    library = context.policy.overlays
    if library is None or name not in library:
        raise RuntimeError(f"overlay {name!r} was asked for, but this process does not have it")
    canvas, frames = context.image, context.frames
    frame = (canvas.width, canvas.height // frames)
    spot = placement(frame, library.native_size(name), library.overlay(name))
    has_alpha = bool(canvas.hasalpha())
    grey = canvas.bands - int(has_alpha) == 1
    mark = library.mark(name, spot.width, spot.height, grey=grey, for_alpha=has_alpha)
    if frames == 1:
        # Only the overlay's rectangle is blended: the rest of the canvas
        # passes through as it was, at no cost.
        patch = canvas.crop(spot.left, spot.top, spot.width, spot.height)
        context.image = canvas.insert(over(patch, mark), spot.left, spot.top)
        return
    # An animation: one layer as tall as the strip, blended in one pass. A
    # blend per frame is as many operations, each with buffers of its own
    # (20 frames: +16 MB).
    context.image = with_page_height(over(canvas, mark.layer(frame, spot, frames)), frame[1])


def over(base: pyvips.Image, mark: Mark) -> pyvips.Image:
    """``mark`` composited over the 8-bit ``base`` of its size ("over",
    premultiplied, in float, rounded once); ``base``'s bands kept.

    Plain arithmetic rather than libvips' ``composite``, which costs more
    than the render's resize on a large output (a 1000x250 overlay on a
    4000-px JPEG: +30-50 % per render), and rounds down in 8 bits."""
    if not mark.for_alpha:
        return (base * mark.inverse + mark.addend).cast("uchar")  # the addend rounds
    # The base premultiplied in one operation, so that its pipeline has one
    # consumer (each would have buffers of its own); alpha 0 gives colour 0.
    blended = base.premultiply() * mark.inverse + mark.addend
    return blended.unpremultiply().rint().cast("uchar")
