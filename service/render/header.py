"""The original's header, read once per original: what it is, upright.

``read_facts`` opens the header (no pixel is decoded) and keeps, as plain
data, everything that the cache key, the decode budget and the render's
steps ask about the original, so none of them opens the header again:
its loader, upright size, pages, alpha, whether it needs colour management,
whether it looks drawn, its whole-image decode memory, for JPEGs that
libjpeg decodes whole its scan count, and its rights fields (``rights``).
``choose_output`` is the first step: the format and frame count the render
produces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyvips

from ..errors import UnprocessableImage
from ..formats import ACCEPTED_LOADERS, OutputFormat, fallback_format
from . import colour, memory
from .failures import libvips_message
from .fields import int_field, str_field
from .jpeg_markers import annex_k_quality, jpeg_scans, luma_quantisation

if TYPE_CHECKING:
    from .context import RenderContext
    from .request import RenderRequest
from .limits import MAX_JPEG_SCANS
from .rights import NO_RIGHTS, Rights, read_rights

SVG_LOADER = "svgload_source"  # accepted only with --enable-svg
# Loaders whose originals can be animated, and that take the ``n`` option.
ANIMATED_LOADERS = frozenset({"gifload_source", "webpload_source"})

# The lossless compression under which a PNG counts as drawn (is_drawn): of
# the 124 PNGs measured, the photographs and wallpapers compressed to
# 0.14-1.0 of their raw size, the screenshots, charts and diagrams to
# 0.013-0.062.
_DRAWN_MAX_COMPRESSION = 0.1


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the header says about an original, upright and per frame."""

    loader: str
    width: int
    height: int  # per frame
    pages: int
    has_alpha: bool
    orientation: int  # EXIF's, 1-8: how the stored pixels are turned upright
    own_format: OutputFormat  # what it renders to when no format is asked for
    needs_colour_management: bool
    drawn: bool  # looks drawn rather than photographed (save's PNG filters)
    decode_bytes: int  # what its decoder holds for the whole image at once
    pixel_bytes: int  # one frame decoded whole (trim keeps every frame so)
    jpeg_scans: int | None  # counted (up to just past the limit) where libjpeg decodes whole
    # The q of a JPEG made with the standard's Annex K table (libjpeg's
    # scaling), read from its luma table; None for any other (encoding.py
    # keeps that table for it, near that q).
    jpeg_annex_k_quality: int | None = None
    rights: Rights = NO_RIGHTS  # its creator and copyright fields (rights)

    @property
    def animated(self) -> bool:
        return self.pages > 1 and self.loader in ANIMATED_LOADERS

    @property
    def swaps_axes(self) -> bool:
        """Stored sideways: its EXIF orientation turns it by 90 degrees."""
        return self.orientation >= 5

    @property
    def stored_size(self) -> tuple[int, int]:
        """The size as the file stores it (before orientation)."""
        return (self.height, self.width) if self.swaps_axes else (self.width, self.height)

    @property
    def stored_width(self) -> int:
        """The width of the lines as the file stores them (before rotation)."""
        return self.height if self.swaps_axes else self.width


def load_header(descriptor: int) -> pyvips.Image:
    """The image at ``descriptor``, header only: no pixel is decoded until
    the image is used."""
    source = pyvips.Source.new_from_descriptor(descriptor)
    try:
        return pyvips.Image.new_from_source(source, "", access="sequential")
    except (pyvips.Error, UnicodeDecodeError) as error:
        libvips_message(error)  # read, so that libvips' error buffer is cleared
        raise UnprocessableImage("the original is not an image in a supported format") from error


def read_facts(descriptor: int, *, allow_svg: bool) -> HeaderFacts:
    """The facts of the original open at ``descriptor``; UnprocessableImage
    when it is no image, or one of a type we do not accept. Leaves the
    descriptor at offset 0 for a caller that renders from it next."""
    try:
        header = load_header(descriptor)
        return _facts(header, descriptor, allow_svg)
    finally:
        os.lseek(descriptor, 0, os.SEEK_SET)


def _facts(header: pyvips.Image, descriptor: int, allow_svg: bool) -> HeaderFacts:
    loader = str(header.get("vips-loader"))
    if loader not in ACCEPTED_LOADERS and not (allow_svg and loader == SVG_LOADER):
        name = loader.removesuffix("_source").removesuffix("load")
        raise UnprocessableImage(f"images of type {name} are not accepted")
    orientation = int_field(header, "orientation", 1)
    if orientation not in range(1, 9):
        orientation = 1  # libvips' autorotate, too, leaves any other value alone
    width, height = header.width, header.height  # one page: loaders default to n=1
    if orientation >= 5:
        width, height = height, width
    has_alpha = bool(header.hasalpha())
    own_format = _own_format(header, loader, has_alpha)
    return HeaderFacts(
        loader=loader,
        width=width,
        height=height,
        pages=max(1, int_field(header, "n-pages", 1)),
        has_alpha=has_alpha,
        orientation=orientation,
        own_format=own_format,
        needs_colour_management=colour.needs_colour_management(header),
        drawn=is_drawn(header, os.fstat(descriptor).st_size),
        decode_bytes=memory.whole_image_bytes(header),
        pixel_bytes=memory.decoded_bytes(header),
        jpeg_scans=(
            jpeg_scans(descriptor, stop_after=MAX_JPEG_SCANS) if _counts_scans(header) else None
        ),
        jpeg_annex_k_quality=(
            annex_k_quality(luma_quantisation(descriptor))
            if own_format is OutputFormat.JPEG
            else None
        ),
        rights=read_rights(header),
    )


def _counts_scans(header: pyvips.Image) -> bool:
    """Whether the render's scan limit applies: a progressive or otherwise
    multi-scan JPEG as libjpeg reports it, and every Ultra HDR one
    (libultrahdr decodes its main image with libjpeg too)."""
    return memory.is_multiscan_jpeg(header) or str(header.get("vips-loader")) == "uhdrload_source"


def _own_format(header: pyvips.Image, loader: str, has_alpha: bool) -> OutputFormat:
    """The format an original keeps when the request names none."""
    native = ACCEPTED_LOADERS.get(loader)
    if native is OutputFormat.AVIF and str_field(header, "heif-compression") != "av1":
        native = None  # HEIC and friends: we read them but do not write them
    return native or fallback_format(has_alpha)


def is_drawn(header: pyvips.Image, source_bytes: int) -> bool:
    """Whether the original looks drawn (a screenshot, chart, diagram, icon)
    rather than photographed, from its header and file size: a GIF, a
    palette PNG, or a PNG that compresses to under a tenth of its raw size.

    The raw size is the decoded one (8 or 16 bits a sample), so 1-, 2- and
    4-bit PNGs (line art, bilevel scans) nearly always count as drawn. Every
    other format counts as a photograph: the file size of a lossy original
    says nothing about flat colour, and TIFF or lossless WebP originals are
    rare here. (SVG renders with alpha: unfiltered anyway.)"""
    loader = str(header.get("vips-loader")).removesuffix("_source")
    if loader == "gifload":
        return True
    if loader != "pngload":
        return False
    if int_field(header, "palette", 0):
        return True
    sample_bytes = 2 if header.format == "ushort" else 1
    raw_bytes = header.width * header.height * header.bands * sample_bytes
    return source_bytes < _DRAWN_MAX_COMPRESSION * raw_bytes


def choose_output(context: RenderContext) -> None:
    """Step: the output format, and how many frames of the original it keeps."""
    request, facts = context.request, context.facts
    context.output = output_format(request, facts)
    context.frames = frames_to_render(facts, context.output, context.policy.max_frames)


def output_format(request: RenderRequest, facts: HeaderFacts) -> OutputFormat:
    """The format asked for, except that format=auto's AVIF gives way to
    its animated fallback for an animation; none asked: the original's own."""
    if request.negotiated and request.format is OutputFormat.AVIF and facts.animated:
        if request.animated_fallback is not None:
            return request.animated_fallback
    elif request.format is not None:
        return request.format
    return facts.own_format


def frames_to_render(facts: HeaderFacts, output: OutputFormat, max_frames: int) -> int:
    """Animations stay animated where the output format animates, cut to
    the first ``max_frames`` frames; elsewhere the first frame is used."""
    if not output.animates or facts.loader not in ANIMATED_LOADERS:
        return 1
    return min(facts.pages, max_frames)
