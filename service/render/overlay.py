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
# widths (a site's srcset sizes times its overlays), and at most this many
# bytes of them (a 1000x250 logo at 4 bytes a pixel is 1 MB).
MAX_SIZES = 32
MAX_BYTES = 64 * 2**20


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
        self._sizes: OrderedDict[tuple[str, int, int, bool], pyvips.Image] = OrderedDict()
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

    def image(self, name: str, width: int, height: int, *, grey: bool) -> pyvips.Image:
        """``name`` resized to ``width`` x ``height``: 8-bit sRGB with alpha
        (grey with alpha if ``grey``), in memory, opacity not applied."""
        key = (name, width, height, grey)
        with self._lock:
            cached = self._sizes.get(key)
            if cached is not None:
                self._sizes.move_to_end(key)
                return cached
        # Built outside the lock: two renders may both build one size, once.
        built = build(self._overlays[name], self._facts[name], (width, height), grey=grey)
        with self._lock:
            self.builds += 1
            if key not in self._sizes:
                self._sizes[key] = built
                self._bytes += _size_of(built)
            while len(self._sizes) > 1 and (
                len(self._sizes) > self._max_sizes or self._bytes > self._max_bytes
            ):
                _, evicted = self._sizes.popitem(last=False)
                self._bytes -= _size_of(evicted)
        return built

    @property
    def sizes(self) -> int:
        """Resized copies held now."""
        with self._lock:
            return len(self._sizes)


def _size_of(image: pyvips.Image) -> int:
    return int(image.width * image.height * image.bands)


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
    frame_height = canvas.height // frames
    spot = placement((canvas.width, frame_height), library.native_size(name), library.overlay(name))
    grey = canvas.bands - int(canvas.hasalpha()) == 1
    mark = library.image(name, spot.width, spot.height, grey=grey)
    colour_bands = mark.bands - 1
    alpha = mark[colour_bands] * (library.overlay(name).opacity / 255)  # 0-1, float
    colour = mark[0:colour_bands] * alpha  # premultiplied
    if frames == 1:
        # Only the overlay's rectangle is blended: the rest of the canvas
        # passes through as it was, at no cost.
        patch = canvas.crop(spot.left, spot.top, spot.width, spot.height)
        context.image = canvas.insert(over(patch, alpha, colour), spot.left, spot.top)
        return

    # An animation: one layer as tall as the strip, the overlay at the same
    # place in each frame, blended in one pass. A blend per frame is as many
    # operations, each with its own buffers: 20 frames took 16 MB more.
    def layer(image: pyvips.Image) -> pyvips.Image:
        framed = image.embed(spot.left, spot.top, canvas.width, frame_height)  # 0 around
        return framed.replicate(1, frames)

    context.image = with_page_height(over(canvas, layer(alpha), layer(colour)), frame_height)


def over(base: pyvips.Image, alpha: pyvips.Image, colour: pyvips.Image) -> pyvips.Image:
    """``colour`` (premultiplied by ``alpha``, 0-1) composited over the
    8-bit ``base``, rounded once to 8 bits; ``base``'s bands and alpha kept.

    Plain arithmetic rather than libvips' ``composite``, which costs more
    than the render's resize on a large output (a 1000x250 overlay on a
    4000-px JPEG: +45 % per render), and rounds down in 8 bits."""
    inverse = 1 - alpha
    if not base.hasalpha():
        return (base * inverse + colour).rint().cast("uchar")
    # Premultiplied over: the base premultiplied in one operation, so that
    # its pipeline has one consumer (each would have buffers of its own).
    blended = base.premultiply() * inverse + colour.bandjoin(alpha * 255)
    return blended.unpremultiply().rint().cast("uchar")  # alpha 0: colour 0
