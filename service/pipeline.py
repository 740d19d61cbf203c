"""The render: one original in, one encoded image written to a descriptor.

The only module that imports pyvips. A render is a short list of steps over
one ``_Render`` context (load header, check it, choose the output, thumbnail,
colour, flatten, save); each step is a no-op when it has nothing to do.

libvips is driven the way a thumbnail server should drive it:
- ``thumbnail_source`` on a ``Source``: shrink-on-load, sequential access, no
  full decode of a large original;
- one libvips worker thread per render (``VIPS_CONCURRENCY=1``, set before
  pyvips is imported: pyvips reads it once): parallelism comes from running
  ``--concurrency`` renders at once, which keeps two cores busy without
  oversubscribing them (NOTES.md: default threading made a naive server
  0.7x the baseline);
- the operation cache off (``cache_set_max(0)``): every request is a different
  file or size, so it only holds memory;
- untrusted loaders blocked, and an allow-list of loaders on top of that.
"""

from __future__ import annotations

import functools
import os
import time

# Must precede the pyvips import: libvips reads these when it starts.
os.environ.setdefault("VIPS_CONCURRENCY", "1")
# Drop libvips' warnings ("error in tile", "read gave 1 warnings") in C: a
# corrupt original produces dozens, and failures reach us as exceptions.
os.environ.setdefault("VIPS_WARNING", "0")

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyvips

from . import icc
from .errors import RenderTimeout, SourceTooLarge, UnprocessableImage
from .formats import ACCEPTED_LOADERS, OutputFormat, fallback_format
from .geometry import centred_offset, cover_prescale, crop_anchor, scaled_box
from .jpeg_markers import jpeg_scans
from .spec import Fit, Gravity

# libvips' largest coordinate: "unconstrained" for one side of the box.
_UNBOUNDED = 10_000_000

# Make truncated originals errors, not grey-filled images. thumbnail_source
# ignores its ``fail_on`` keyword (libvips 8.18): it must go in the load
# option string, which is our constant, never user text.
_LOAD_OPTIONS = "fail_on=truncated"
# Loaders that decode every line at full width (no shrink-on-load), and the
# reduction from which lines are reduced first (see _reduces_lines_first).
_FULL_WIDTH_LOADERS = frozenset({"pngload_source"})
_LINES_FIRST_MIN_FACTOR = 4
_REDUCE_GAP = 2.0  # thumbnail's own: a box shrink, then Lanczos for the last 2-4x

_SVG_LOADER = "svgload_source"  # accepted only with --enable-svg

# PNG row filters for opaque photographs (png_save_options), and the
# lossless compression under which a PNG counts as drawn (is_drawn): of the
# 124 PNGs measured, the photographs and wallpapers compressed to 0.14-1.0
# of their raw size, the screenshots, charts and diagrams to 0.013-0.062.
_PHOTO_PNG_FILTERS = "none|sub|avg"
_DRAWN_MAX_COMPRESSION = 0.1

# The longest side we decode. libvips' line buffers grow with the width, not
# the pixel count: a 67 MP 16-bit PNG peaked at 90 MB as 8192², 330 MB at
# 65535 x 1024 and 4.1 GB at 1048640 x 64 (found by fuzzing). 32,768 keeps a
# render under ~260 MB and still takes phone panoramas (16128 x 4032).
MAX_SOURCE_SIDE = 32_768

# The most scans a progressive JPEG may have. libjpeg decodes every scan
# before the first pixel comes out, out of the render deadline's reach, and
# a crafted file is all scans of nothing (EOB runs): 2,647 of them in 959 KB
# held a render slot for 73 s at 100 MP. Encoders write 10 (libjpeg's
# default script) or fewer; libjpeg-turbo's own fuzzers stop at 500.
MAX_JPEG_SCANS = 256

# What a HEIF/AVIF decode holds per pixel and byte of sample (see
# _whole_image_bytes).
_HEIF_BYTES_PER_PIXEL = 18
_GIF_BYTES_PER_PIXEL = 6

# The largest shrunk animation strip that cover and fill shape from memory
# (_resize): an animated avatar, 200x200 x 100 frames, is 16 MB.
_STRIP_IN_MEMORY_BYTES = 32 * 2**20

# Loaders whose originals can be animated, and that take the ``n`` option.
_ANIMATED_LOADERS = frozenset({"gifload_source", "webpload_source"})


def configure_libvips(*, enable_svg: bool = False) -> None:
    """Once per process, before any render."""
    # pyvips forwards every GLib message of libvips to Python logging through
    # a Python callback, run inside libvips' own logging. If that callback
    # triggers garbage collection, a finalised image can log again on the
    # same thread: GLib sees a recursive log call and the process aborts
    # (SIGABRT, found by the fuzz tests). Its ~10 info lines per render also
    # cost CPU. Without it, GLib's own handlers apply: warnings are dropped
    # (VIPS_WARNING above), info is silent, criticals go to stderr.
    remove_python_log_handler = getattr(pyvips, "_remove_log_handler", None)
    if remove_python_log_handler is not None:
        remove_python_log_handler()
    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)
    if enable_svg:
        # librsvg reading from a Source has no base URI, so it resolves no
        # file or network references; scripts are never run by librsvg.
        pyvips.operation_block_set("VipsForeignLoadSvg", False)


# Bump whenever a change here changes output bytes (save options, colour
# handling, geometry): it is part of every cache key, so old renders are
# never served for new ones.
PIPELINE_REVISION = 7


def libvips_version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """Everything a render needs, already validated and resolved."""

    width: int | None
    height: int | None
    format: OutputFormat | None  # None: the original's, or the fallback
    quality: dict[OutputFormat, int]  # the quality to use per output format
    background: tuple[int, int, int, int]
    max_output_size: int
    max_source_pixels: int
    avif_effort: int
    fit: Fit = Fit.CONTAIN
    gravity: Gravity = Gravity.CENTRE
    max_frames: int = 100
    # format=auto chose the format; AVIF is not used for animations, which
    # get animated_fallback instead (None: the original's own format).
    negotiated: bool = False
    animated_fallback: OutputFormat | None = None
    # Seconds from the start of the render (queue time is not counted).
    timeout_seconds: float = 20.0
    allow_svg: bool = False
    # The largest whole-image decode one original may need (decode_memory).
    max_decode_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class RenderResult:
    format: OutputFormat
    width: int
    height: int  # per frame
    frames: int


@dataclass(frozen=True, slots=True)
class _Original:
    """What the header says, upright."""

    loader: str
    width: int
    height: int  # per frame
    pages: int
    has_alpha: bool
    swaps_axes: bool  # stored sideways: its EXIF orientation turns it by 90 degrees


def render(request: RenderRequest, source_fd: int, target_fd: int) -> RenderResult:
    """Render the original open at ``source_fd`` into ``target_fd``.

    Raises ``UnprocessableImage`` for anything about the original that stops
    the render: an undecodable, truncated, refused or over-limit original.
    Some decoders fail only in the middle of the pixels (HEVC in HEIF, old
    JPEG-in-TIFF), which is why the caller renders into a file and only then
    answers.
    """
    deadline = _Deadline(request.timeout_seconds)
    try:
        return _render(request, source_fd, target_fd, deadline)
    except (pyvips.Error, UnicodeDecodeError) as error:
        _release_images(error)
        reason = _describe(error)
        if deadline.killed or deadline.passed():
            raise RenderTimeout(
                f"the render took longer than {request.timeout_seconds:g} s"
            ) from error
        raise UnprocessableImage(reason) from error
    except (UnprocessableImage, OutputWriteError) as failure:
        # Refused from the header (over a limit, not accepted), or the
        # target's disk failed: the caller answers or retries, uncached.
        _release_images(failure)
        raise


def _render(
    request: RenderRequest, source_fd: int, target_fd: int, deadline: _Deadline
) -> RenderResult:
    header = _load_header(source_fd)
    original = _describe_original(header, request.allow_svg)
    output = _choose_output(request, header, original)
    frames = _frames_to_render(request, original, output)
    _check_limits(request, original, frames)
    _check_scans(header, source_fd)
    _decode_need(request, header)
    image = _resize(request, header, original, source_fd, frames, deadline=deadline)
    image = _to_srgb(image)
    image = _pad(image, request, output, original, frames)
    image = _flatten(image, output, request.background)
    png_options = _png_options(output, original, header, source_fd)
    _save(image, output, request, target_fd, deadline, png_options=png_options)
    return RenderResult(
        format=output, width=image.width, height=image.height // frames, frames=frames
    )


def _release_images(error: BaseException) -> None:
    """Drop the tracebacks of ``error`` and of the exceptions it chains
    (``__cause__``, ``__context__``): their frames hold the pipeline's
    images and sources, each source a descriptor of the original. Kept,
    they lived as long as the exception, and in the service that is a
    reference cycle (an asyncio future holds it, a frame of its traceback
    holds the future): until the cycle collector ran, every failed render
    held the original open. These are refusals of the original, a timeout
    or a full disk, whose tracebacks no log shows.

    Dropped whole, a traceback frees its frames innermost first, as Python
    always does. Not ``traceback.clear_frames``, which clears them
    outermost first: that freed a ``TargetCustom``'s Python callbacks while
    the failed saver still held the target, whose flush then called them
    (a fatal error in cffi, found by tests/test_fuzz.py)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]


def decode_memory(source_fd: int, request: RenderRequest | None = None) -> int:
    """Bytes the decoder of the original at ``source_fd`` holds for the whole
    image at once, estimated from its header; 0 when it streams or the
    header is unreadable. With ``request`` (the decode budget's case), 0 too
    for an original its render will refuse from the header (not accepted,
    over a source limit): it must not wait for, nor hold, room it will
    never use."""
    try:
        header = _load_header(source_fd)
        if request is None:
            return _whole_image_bytes(header)
        _check_limits(request, _describe_original(header, request.allow_svg), frames=1)
        _check_scans(header, source_fd)
        return _decode_need(request, header)
    except UnprocessableImage:  # SourceTooLarge included
        return 0
    finally:
        os.lseek(source_fd, 0, os.SEEK_SET)  # for a caller that renders from it next


def _whole_image_bytes(header: pyvips.Image) -> int:
    loader = str(header.get("vips-loader"))
    pixels = header.width * header.height  # one page: loaders default to n=1
    interlaced = bool(_int_field(header, "interlaced", 0))
    sample_bytes = 2 if header.format in ("ushort", "short") else 1
    if _is_multiscan_jpeg(header):
        # Progressive, or any JPEG in several scans: libjpeg keeps every DCT
        # coefficient (2 bytes each) of every component until the last scan,
        # at full size whatever the shrink-on-load.
        return pixels * _jpeg_coefficient_bytes_per_pixel(header)
    if loader == "pngload_source" and interlaced:
        return pixels * header.bands * sample_bytes  # Adam7: read whole
    if loader == "gifload_source":
        # libnsgif decodes each frame into a full-size RGBA canvas: 5.5 bytes
        # a pixel above idle for a 6000x6000 GIF shrunk to 800 px.
        return pixels * _GIF_BYTES_PER_PIXEL
    if loader == "heifload_source":
        # libheif decodes the whole image (the AV1/HEVC decoder's planes,
        # then RGB(A)) and libvips copies it, as heifload cannot stream:
        # 16.9-17.5 bytes a pixel above idle for 6 and 19 MP 8-bit AVIFs.
        return pixels * _HEIF_BYTES_PER_PIXEL * sample_bytes
    return 0


def _jpeg_coefficient_bytes_per_pixel(header: pyvips.Image) -> int:
    """2 bytes per coefficient, one coefficient per sample: 4:2:0 colour
    has 1.5 samples a pixel, 4:2:2 has 2, unsubsampled one per band."""
    subsampling = _str_field(header, "jpeg-chroma-subsample")
    if header.bands == 3 and subsampling == "4:2:0":
        return 3
    if header.bands == 3 and subsampling in ("4:2:2", "4:4:0"):
        return 4
    return 2 * header.bands


def _load_header(descriptor: int) -> pyvips.Image:
    source = pyvips.Source.new_from_descriptor(descriptor)
    try:
        # Header only: no pixels are decoded until the image is used.
        return pyvips.Image.new_from_source(source, "", access="sequential")
    except (pyvips.Error, UnicodeDecodeError) as error:
        _libvips_message(error)  # read, so that libvips' error buffer is cleared
        raise UnprocessableImage("the original is not an image in a supported format") from error


def _describe_original(header: pyvips.Image, allow_svg: bool) -> _Original:
    loader = str(header.get("vips-loader"))
    if loader not in ACCEPTED_LOADERS and not (allow_svg and loader == _SVG_LOADER):
        name = loader.removesuffix("_source").removesuffix("load")
        raise UnprocessableImage(f"images of type {name} are not accepted")
    swaps_axes = _int_field(header, "orientation", 1) in (5, 6, 7, 8)
    width, height = header.width, header.height  # one page: loaders default to n=1
    if swaps_axes:
        width, height = height, width
    pages = _int_field(header, "n-pages", 1)
    return _Original(loader, width, height, max(1, pages), bool(header.hasalpha()), swaps_axes)


def _choose_output(
    request: RenderRequest, header: pyvips.Image, original: _Original
) -> OutputFormat:
    animated = original.pages > 1 and original.loader in _ANIMATED_LOADERS
    if request.negotiated and request.format is OutputFormat.AVIF and animated:
        if request.animated_fallback is not None:
            return request.animated_fallback
    elif request.format is not None:
        return request.format
    return _own_format(header, original)


def _own_format(header: pyvips.Image, original: _Original) -> OutputFormat:
    """The format an original keeps when the request names none."""
    native = ACCEPTED_LOADERS.get(original.loader)
    if native is OutputFormat.AVIF and _str_field(header, "heif-compression") != "av1":
        native = None  # HEIC and friends: we read them but do not write them
    return native or fallback_format(original.has_alpha)


@dataclass(frozen=True, slots=True)
class OwnOutput:
    """What a cache key may need to know about an original's content: the
    format it renders to when none is asked for, and whether it has alpha
    (which decides whether ``bg`` flattens it into a JPEG)."""

    format: OutputFormat
    has_alpha: bool


def own_output(source_fd: int, *, allow_svg: bool) -> OwnOutput | None:
    """From the header of the original at ``source_fd`` (no pixel decoded);
    None when it is not an image we accept: its render will say why."""
    try:
        header = _load_header(source_fd)
        original = _describe_original(header, allow_svg)
    except UnprocessableImage:
        return None
    finally:
        os.lseek(source_fd, 0, os.SEEK_SET)
    return OwnOutput(_own_format(header, original), original.has_alpha)


def _frames_to_render(request: RenderRequest, original: _Original, output: OutputFormat) -> int:
    """Animations stay animated where the output format animates, cut to
    the first ``max_frames`` frames; elsewhere the first frame is used."""
    if not output.animates or original.loader not in _ANIMATED_LOADERS:
        return 1
    return min(original.pages, request.max_frames)


def _check_limits(request: RenderRequest, original: _Original, frames: int) -> None:
    if max(original.width, original.height) > MAX_SOURCE_SIDE:
        raise SourceTooLarge(
            f"the original is {original.width}x{original.height}, over the limit of "
            f"{MAX_SOURCE_SIDE} px per side"
        )
    pixels = original.width * original.height * frames
    if pixels > request.max_source_pixels:
        raise SourceTooLarge(
            f"the original has {pixels} pixels to process, over the limit of "
            f"{request.max_source_pixels}"
        )


def _is_multiscan_jpeg(header: pyvips.Image) -> bool:
    """A JPEG in several scans (progressive, or sequential in parts), which
    libjpeg decodes whole, coefficients first, before any pixel comes out."""
    if str(header.get("vips-loader")) != "jpegload_source":
        return False
    return bool(_int_field(header, "interlaced", 0) or _int_field(header, "jpeg-multiscan", 0))


def _check_scans(header: pyvips.Image, descriptor: int) -> None:
    """Refuse a JPEG in more scans than MAX_JPEG_SCANS: a progressive or
    otherwise multi-scan one as libjpeg reports it, and every Ultra HDR one
    (libultrahdr decodes its main image with libjpeg too)."""
    loader = str(header.get("vips-loader"))
    if not (_is_multiscan_jpeg(header) or loader == "uhdrload_source"):
        return
    scans = jpeg_scans(descriptor, stop_after=MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise SourceTooLarge(f"the original is a JPEG in over {MAX_JPEG_SCANS} scans, the limit")


def _decode_need(request: RenderRequest, header: pyvips.Image) -> int:
    """The original's whole-image decode memory; SourceTooLarge when it is
    over ``max_decode_bytes``."""
    limit = request.max_decode_bytes
    need = _whole_image_bytes(header)
    if limit is not None and need > limit:
        raise SourceTooLarge(
            f"the original needs {need / 1e6:.0f} MB of memory to decode, over the limit of "
            f"{limit / 1e6:.0f} MB"
        )
    return need


def _resize(
    request: RenderRequest,
    header: pyvips.Image,
    original: _Original,
    descriptor: int,
    frames: int,
    *,
    deadline: _Deadline,
) -> pyvips.Image:
    """Shrink-on-load to the requested geometry (the fit modes live here)."""
    width, height = request.width, request.height
    if request.fit is Fit.CONTAIN or width is None or height is None:
        if width is None and height is None:
            # No size asked: the original's, but never beyond the output limit.
            width = height = request.max_output_size
        box = (width or _UNBOUNDED, height or _UNBOUNDED)
        return _thumbnail(header, original, descriptor, box, frames)
    upright = (original.width, original.height)
    box = scaled_box(width, height, upright)
    if request.fit is Fit.PAD:
        return _thumbnail(header, original, descriptor, box, frames)
    if frames > 1:
        # thumbnail's crop and force would act on the whole frame strip:
        # shrink the strip first, then shape each frame.
        strip = _thumbnail(header, original, descriptor, cover_prescale(box, upright), frames)
        if strip.width * strip.height * strip.bands <= _STRIP_IN_MEMORY_BYTES:
            # Each frame's shaping reads a little of its neighbours, and the
            # GIF loader decodes from the start again for each step back:
            # 100 frames of 1000x1000 to 50x50 took 7.9 s, 2.0 s from memory.
            # The copy is computed here, so the deadline watches it too.
            deadline.watch(strip)
            strip = strip.copy_memory()
        if request.fit is Fit.COVER:
            # A smart crop per frame would make the crop jump between frames.
            smart = request.gravity in (Gravity.ATTENTION, Gravity.ENTROPY)
            anchor = "centre" if smart else crop_anchor(request.gravity, box, upright)
            return _per_frame(strip, frames, lambda frame: _cover_frame(frame, box, anchor))
        return _per_frame(
            strip, frames, lambda frame: frame.thumbnail_image(box[0], height=box[1], size="force")
        )
    if request.fit is Fit.FILL:
        return _thumbnail(header, original, descriptor, box, frames, size="force")
    return _thumbnail(
        header, original, descriptor, box, frames, crop=crop_anchor(request.gravity, box, upright)
    )


def _thumbnail(
    header: pyvips.Image,
    original: _Original,
    descriptor: int,
    box: tuple[int, int],
    frames: int,
    *,
    size: str = "down",  # thumbnail upscales by default; we never do
    crop: str | None = None,
) -> pyvips.Image:
    source = pyvips.Source.new_from_descriptor(descriptor)
    load_options = _LOAD_OPTIONS + (f",n={frames}" if frames > 1 else "")
    # Any: pyvips' stubs type each option; this dict holds a varying few.
    options: dict[str, Any] = {}
    if crop is not None:
        options["crop"] = crop
    if _needs_colour_management(header):
        # Embedded profiles (Adobe RGB, P3, XYB, CMYK) become sRGB; an image
        # without one, or with plain sRGB's, is sRGB already and skips the
        # transform. (libvips also calls this option export_profile.)
        options["output_profile"] = "srgb"
    if frames == 1 and crop is None and size == "down" and _reduces_lines_first(original, box):
        return _thumbnail_lines_first(header, original, source, options, box)
    return pyvips.Image.thumbnail_source(
        source, box[0], height=box[1], size=size, option_string=load_options, **options
    )


def _reduces_lines_first(original: _Original, box: tuple[int, int]) -> bool:
    """Whether to reduce along each line before thumbnail does the rest.

    For originals that cannot shrink on load, thumbnail reduces down the
    image first, so it buffers full-width lines: a 46 MP PNG (9042 px wide)
    peaked 50 MiB above idle. Reducing along the lines first, with the same
    filter thumbnail uses (Lanczos 3 after a box shrink, gap 2), keeps those
    buffers narrow: 21 MiB, and the same output to rounding (51.0 dB from an
    exact Lanczos resize against thumbnail's 51.1; 54 dB from thumbnail's).
    Opaque images only: thumbnail premultiplies alpha before filtering.
    """
    if original.loader not in _FULL_WIDTH_LOADERS or original.has_alpha:
        return False
    stored_width = original.height if original.swaps_axes else original.width
    return stored_width >= _LINES_FIRST_MIN_FACTOR * box[0]


def _thumbnail_lines_first(
    header: pyvips.Image,
    original: _Original,
    source: pyvips.Source,
    options: dict[str, Any],
    box: tuple[int, int],
) -> pyvips.Image:
    # The exact size plain thumbnail gives, from the header alone (no pixel
    # is decoded to build it), so both paths produce the same size.
    expected = header.thumbnail_image(box[0], height=box[1], size="down")
    line_target = expected.height if original.swaps_axes else expected.width
    image = pyvips.Image.new_from_source(source, _LOAD_OPTIONS, access="sequential")
    if image.width > line_target:
        image = image.reduceh(image.width / line_target, gap=_REDUCE_GAP)
    # The lines fit now: thumbnail reduces down the image, rotates and
    # converts colour exactly as on the plain path.
    return image.thumbnail_image(expected.width, height=expected.height, size="force", **options)


def _cover_frame(frame: pyvips.Image, box: tuple[int, int], anchor: str) -> pyvips.Image:
    """One frame of an animated cover. The strip was shrunk so that each
    frame covers the box, so this is a crop. ``thumbnail_image(crop=...)``
    gives the same, but computes the frame's pixels while the pipeline is
    being built, and a GIF frame needs every frame before it decoded: 100
    frames of 1000x1000 took 16 s that way (frames squared), and ran on
    past the render's deadline, which only stops a running pipeline."""
    if frame.width < box[0] or frame.height < box[1]:  # a rounding pixel short
        return frame.thumbnail_image(box[0], height=box[1], crop=anchor)
    spare = (frame.width - box[0], frame.height - box[1])
    left, top = {"low": (0, 0), "high": spare}.get(anchor, (spare[0] // 2, spare[1] // 2))
    return frame.crop(left, top, box[0], box[1])


def _per_frame(
    image: pyvips.Image, frames: int, shape: Callable[[pyvips.Image], pyvips.Image]
) -> pyvips.Image:
    """Apply ``shape`` to each frame of an animation strip and restack them."""
    page_height = image.height // frames
    shaped = [
        shape(image.crop(0, index * page_height, image.width, page_height))
        for index in range(frames)
    ]
    joined = pyvips.Image.arrayjoin(shaped, across=1)
    return _with_page_height(joined, shaped[0].height)


def _with_page_height(image: pyvips.Image, page_height: int) -> pyvips.Image:
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", page_height)
    return image


def _pad(
    image: pyvips.Image,
    request: RenderRequest,
    output: OutputFormat,
    original: _Original,
    frames: int,
) -> pyvips.Image:
    """fit=pad: centre the contained image on a ``bg`` box of the exact size."""
    if request.fit is not Fit.PAD or request.width is None or request.height is None:
        return image
    frame_height = image.height // frames
    box = scaled_box(request.width, request.height, (original.width, original.height))
    red, green, blue, alpha = request.background
    if image.bands < 3:
        image = image.colourspace("srgb")  # a coloured bg needs colour bands
    # An opaque image on an opaque background stays opaque: an alpha band
    # of 255 only makes the file bigger.
    if output.has_alpha and (image.hasalpha() or alpha < 255):
        if not image.hasalpha():
            image = image.bandjoin(255)
        background: list[float] = [red, green, blue, alpha]
    else:
        image = _flatten(image, output, request.background)
        background = [red, green, blue]
    left, top = centred_offset((image.width, frame_height), box)

    def embed(frame: pyvips.Image) -> pyvips.Image:
        return frame.embed(left, top, box[0], box[1], extend="background", background=background)

    if frames > 1:
        return _per_frame(image, frames, embed)
    return embed(image)


def _to_srgb(image: pyvips.Image) -> pyvips.Image:
    # 16-bit and other non-8-bit results: colourspace() rescales them properly
    # (a plain cast would clip 16-bit values and come out white).
    if image.format == "uchar" and str(image.interpretation) in ("srgb", "b-w"):
        return image
    colour_bands = image.bands - int(image.hasalpha())
    return image.colourspace("b-w" if colour_bands == 1 else "srgb")


def _flatten(
    image: pyvips.Image, output: OutputFormat, background: tuple[int, int, int, int]
) -> pyvips.Image:
    if output.has_alpha or not image.hasalpha():
        return image
    red, green, blue, _ = background
    if image.bands == 2 and red == green == blue:
        return image.flatten(background=[red])  # grey onto grey stays one band
    if image.bands == 2:
        image = image.colourspace("srgb")  # a coloured bg makes a colour image
    return image.flatten(background=[red, green, blue])


def _save(
    image: pyvips.Image,
    output: OutputFormat,
    request: RenderRequest,
    target_fd: int,
    deadline: _Deadline,
    *,
    png_options: dict[str, object],
) -> None:
    options: dict[str, object] = {"keep": "none"}
    if output.uses_quality:
        options["Q"] = request.quality[output]
    if output is OutputFormat.JPEG:
        options["optimize_coding"] = True
    elif output is OutputFormat.PNG:
        options.update(png_options)
    elif output is OutputFormat.AVIF:
        options["effort"] = request.avif_effort
    writer = _DescriptorWriter(target_fd)
    target = pyvips.TargetCustom()
    target.on_write(writer.write)
    # libvips reports progress while it computes pixels; past the deadline
    # we kill the pipeline. (An encoder busy with a frame, AVIF's, finishes
    # that frame first: the effort default keeps that bounded.)
    deadline.watch(image)
    try:
        image.write_to_target(target, output.suffix, **options)
    except pyvips.Error:
        if writer.error is not None:
            raise OutputWriteError(writer.error) from writer.error
        raise


def png_save_options(*, has_alpha: bool, drawn: bool) -> dict[str, object]:
    """The zlib level and row filters for a PNG, by what the original is
    (not the output: fit=pad adds an alpha band to an opaque photo, which
    still compresses as a photo).

    Measured with ``python -m benchmarks.tuning --only png`` on 124 PNGs at
    800 px (photos, wallpapers, icons, screenshots, charts, overlays;
    benchmarks/README.md), against libpng's adaptive choice among all five
    filters (``all``, which Pillow uses):

    - unfiltered, the 13 opaque drawn images were 13 % smaller than with
      ``all`` and the 93 with alpha 1 % smaller, at under half its encode
      CPU (on images with alpha the filters' heuristic misjudges flat
      transparent areas: one photo with transparent corners doubled);
    - the 18 opaque photographs need filters (unfiltered is 30 % bigger),
      but three are enough: libpng choosing among none, sub and average
      matched ``all`` (+0.25 %) at 0.82x its CPU.

    zlib stays at level 6, libvips' and Pillow's default.
    """
    if has_alpha or drawn:
        return {"compression": 6, "filter": "none"}
    return {"compression": 6, "filter": _PHOTO_PNG_FILTERS}


def _png_options(
    output: OutputFormat, original: _Original, header: pyvips.Image, source_fd: int
) -> dict[str, object]:
    if output is not OutputFormat.PNG:
        return {}
    drawn = is_drawn(header, os.fstat(source_fd).st_size)
    return png_save_options(has_alpha=original.has_alpha, drawn=drawn)


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
    if _int_field(header, "palette", 0):
        return True
    sample_bytes = 2 if header.format == "ushort" else 1
    raw_bytes = header.width * header.height * header.bands * sample_bytes
    return source_bytes < _DRAWN_MAX_COMPRESSION * raw_bytes


class _Deadline:
    """The render's time limit, counted from its start in the render thread."""

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.killed = False

    def passed(self) -> bool:
        return time.monotonic() > self.expires

    def watch(self, image: pyvips.Image) -> None:
        """Stop ``image``'s computation once the deadline has passed."""
        image.set_progress(True)
        image.signal_connect("eval", self.check)

    def check(self, image: pyvips.Image, progress: object) -> None:
        """libvips' ``eval`` signal handler: must not raise into libvips."""
        if not self.killed and self.passed():
            self.killed = True
            image.set_kill(True)


class OutputWriteError(Exception):
    """Writing the encoded image failed (disk full, directory gone): a fault
    of where we write, not of the original."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _DescriptorWriter:
    """Writes libvips' output to our descriptor and keeps the OSError, which
    a plain file target would reduce to "unable to write to target".

    The handler must never raise into libvips: it records and returns -1,
    and ``_save`` re-raises after the call.
    """

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self.error: OSError | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(self.descriptor, view[written:])
            return written
        except OSError as error:
            # Without its traceback: a frame of it holds this writer, a cycle
            # that kept the failed render's target and images alive.
            self.error = error.with_traceback(None)
            return -1


def _has_field(image: pyvips.Image, name: str) -> bool:
    # get_typeof asks for one field (2.6 us); get_fields() lists them all
    # (40 us), and a render reads up to ten fields of its header.
    return image.get_typeof(name) != 0


def _int_field(image: pyvips.Image, name: str, default: int) -> int:
    if not _has_field(image, name):
        return default
    value = image.get(name)
    return value if isinstance(value, int) else default


def _str_field(image: pyvips.Image, name: str) -> str:
    return str(image.get(name)) if _has_field(image, name) else ""


def _needs_colour_management(header: pyvips.Image) -> bool:
    """CMYK, or an embedded profile other than plain sRGB (``icc``)."""
    if header.interpretation == "cmyk":
        return True
    if not _has_field(header, "icc-profile-data"):
        return False
    return not icc.is_srgb(_icc_profile(header), also=_libvips_srgb_profile())


@functools.cache
def _libvips_srgb_profile() -> tuple[bytes, ...]:
    """libvips' own sRGB profile, which libvips-made images embed (once per
    process: a 1-pixel transform attaches it)."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    try:
        return (_icc_profile(pixel.icc_transform("srgb", input_profile="srgb")),)
    except pyvips.Error:  # a libvips without lcms: every profile converts, as before
        return ()


def _icc_profile(image: pyvips.Image) -> bytes:
    value: object = image.get("icc-profile-data")  # a blob: bytes
    return value if isinstance(value, bytes) else b""


# libvips' error log reads "unable to call <operation>", then what each
# step said. A decoder that fails mid-pixels makes the saver fail last
# ("vips2png: unable to write to target"), which names the wrong culprit;
# the source's seek retries ("source: bad seek to 3587") say nothing either.
_NOT_THE_CAUSE = ("vips2", "unable to call", "VipsForeignSave", "source: ")


def _libvips_message(error: pyvips.Error | UnicodeDecodeError) -> str:
    """What libvips said, with its error buffer left clear.

    A UnicodeDecodeError is pyvips failing to build its Error: a decoder
    quoted raw bytes of the original in its message (libheif: a box named
    b"\\x80mir"). pyvips then never cleared libvips' error buffer, and every
    later failure of any request would trip over the same bytes (a 500):
    read it leniently here and clear it."""
    if not isinstance(error, UnicodeDecodeError):
        return str(error)  # pyvips cleared the buffer building it
    text: str = pyvips.ffi.string(pyvips.vips_lib.vips_error_buffer()).decode("utf-8", "replace")
    pyvips.vips_lib.vips_error_clear()
    return text


def _describe(error: pyvips.Error | UnicodeDecodeError) -> str:
    """A one-line, path-free reason for the client: the first thing a
    loader said, else libvips' last line."""
    lines = [line.strip() for line in _libvips_message(error).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(_NOT_THE_CAUSE)]
    detail = said[0] if said else (lines[-1] if lines else "decode failed")
    # libvips prefixes messages with the file name or descriptor; drop it.
    detail = detail.rsplit(": ", 1)[-1]
    return f"the original could not be decoded ({detail[:120]})"
