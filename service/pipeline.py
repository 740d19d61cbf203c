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

import os

# Must precede the pyvips import: libvips reads it when it starts.
os.environ.setdefault("VIPS_CONCURRENCY", "1")

from dataclasses import dataclass

import pyvips

from .errors import SourceTooLarge, UnprocessableImage
from .formats import ACCEPTED_LOADERS, OutputFormat, fallback_format

# libvips' largest coordinate: "unconstrained" for one side of the box.
_UNBOUNDED = 10_000_000

# Make truncated originals errors, not grey-filled images. thumbnail_source
# ignores its ``fail_on`` keyword (libvips 8.18): it must go in the load
# option string, which is our constant, never user text.
_LOAD_OPTIONS = "fail_on=truncated"


def configure_libvips() -> None:
    """Once per process, before any render."""
    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)


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


@dataclass(frozen=True, slots=True)
class RenderResult:
    format: OutputFormat
    width: int
    height: int


def render(request: RenderRequest, source_fd: int, target_fd: int) -> RenderResult:
    """Render the original open at ``source_fd`` into ``target_fd``.

    Raises ``UnprocessableImage`` for anything about the original that stops
    the render: an undecodable, truncated, refused or over-limit original.
    Some decoders fail only in the middle of the pixels (HEVC in HEIF, old
    JPEG-in-TIFF), which is why the caller renders into a file and only then
    answers.
    """
    try:
        header = _load_header(source_fd)
        loader = _check_loader(header)
        _check_limits(request, header)
        output = _choose_output(request, header, loader)
        image = _thumbnail(request, header, source_fd)
        image = _to_srgb(image)
        image = _flatten(image, output, request.background)
        _save(image, output, request, target_fd)
    except pyvips.Error as error:
        raise UnprocessableImage(_describe(error)) from error
    return RenderResult(format=output, width=image.width, height=image.height)


def _load_header(descriptor: int) -> pyvips.Image:
    source = pyvips.Source.new_from_descriptor(descriptor)
    try:
        # Header only: no pixels are decoded until the image is used.
        return pyvips.Image.new_from_source(source, "", access="sequential")
    except pyvips.Error as error:
        raise UnprocessableImage("the original is not an image in a supported format") from error


def _check_loader(header: pyvips.Image) -> str:
    loader = str(header.get("vips-loader"))
    if loader not in ACCEPTED_LOADERS:
        name = loader.removesuffix("_source").removesuffix("load")
        raise UnprocessableImage(f"images of type {name} are not accepted")
    return loader


def _check_limits(request: RenderRequest, header: pyvips.Image) -> None:
    pixels = header.width * header.height
    if pixels > request.max_source_pixels:
        raise SourceTooLarge(
            f"the original has {pixels} pixels, over the limit of {request.max_source_pixels}"
        )


def _choose_output(request: RenderRequest, header: pyvips.Image, loader: str) -> OutputFormat:
    if request.format is not None:
        return request.format
    native = ACCEPTED_LOADERS[loader]
    if native is OutputFormat.AVIF and _heif_compression(header) != "av1":
        native = None  # HEIC and friends: we read them but do not write them
    return native or fallback_format(bool(header.hasalpha()))


def _thumbnail(request: RenderRequest, header: pyvips.Image, descriptor: int) -> pyvips.Image:
    width, height = request.width, request.height
    if width is None and height is None:
        # No size asked: the original's, but never beyond the output limit.
        width = height = request.max_output_size
    source = pyvips.Source.new_from_descriptor(descriptor)
    box = (width or _UNBOUNDED, height or _UNBOUNDED)
    if _needs_colour_management(header):
        # Embedded profiles (Adobe RGB, P3, XYB, CMYK) become sRGB; an image
        # without one is already sRGB and skips the transform.
        return pyvips.Image.thumbnail_source(
            source,
            box[0],
            height=box[1],
            size="down",
            option_string=_LOAD_OPTIONS,
            output_profile="srgb",  # libvips also calls it export_profile
        )
    # size="down": thumbnail upscales by default; we never do.
    return pyvips.Image.thumbnail_source(
        source, box[0], height=box[1], size="down", option_string=_LOAD_OPTIONS
    )


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
    colour: list[float] = [red] if image.bands == 2 else [red, green, blue]
    return image.flatten(background=colour)


def _save(
    image: pyvips.Image, output: OutputFormat, request: RenderRequest, target_fd: int
) -> None:
    options: dict[str, object] = {"keep": "none"}
    if output.uses_quality:
        options["Q"] = request.quality[output]
    if output is OutputFormat.JPEG:
        options["optimize_coding"] = True
    elif output is OutputFormat.AVIF:
        options["effort"] = request.avif_effort
    writer = _DescriptorWriter(target_fd)
    target = pyvips.TargetCustom()
    target.on_write(writer.write)
    try:
        image.write_to_target(target, output.suffix, **options)
    except pyvips.Error:
        if writer.error is not None:
            raise OutputWriteError(writer.error) from writer.error
        raise


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
            self.error = error
            return -1


def _heif_compression(header: pyvips.Image) -> str:
    if "heif-compression" in header.get_fields():
        return str(header.get("heif-compression"))
    return ""


def _needs_colour_management(header: pyvips.Image) -> bool:
    return bool(header.interpretation == "cmyk" or "icc-profile-data" in header.get_fields())


def _describe(error: pyvips.Error) -> str:
    """A one-line, path-free reason for the client."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = lines[-1] if lines else "decode failed"
    # libvips prefixes messages with the file name or descriptor; drop it.
    detail = detail.rsplit(": ", 1)[-1]
    return f"the original could not be decoded ({detail[:120]})"
