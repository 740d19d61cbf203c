"""/info's facts of an original, from one small render: its JSON document.

Most facts are the header's (``HeaderFacts``: the upright size, the loader,
the pages, alpha); the rest need pixels, and all of them come from ONE
shrink-on-load render of at most ``HASH_SIDE`` px a side (libvips'
``thumbnail`` on a Source: a 24 MP JPEG is decoded at 1/8 scale, never
whole), upright and in 8-bit sRGB with an alpha band:

- the ThumbHash and BlurHash of its pixels, and its dominant colour
  (``placeholders``: pure Python over the RGBA bytes);
- the placeholder: the same render shrunk to ``PLACEHOLDER_SIDES[0]`` px
  and saved as a lossy WebP, as a data URI of at most
  ``MAX_PLACEHOLDER_URI`` bytes (smaller sides are tried until it fits).

The document is written to the target descriptor like a render's image, so
the render service caches it the same way. Bump ``INFO_VERSION`` whenever
the document's bytes change for the same original (a field, an encoder, a
size here): it is part of the key.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import pyvips

from ..errors import UnprocessableImage
from ..formats import OutputFormat
from ..placeholders.blurhash import encode_blurhash
from ..placeholders.dominant import dominant_colour
from ..placeholders.thumbhash import MAX_SIDE, thumbhash_base64
from . import colour
from .failures import Deadline, failure_of, release_images
from .header import HeaderFacts
from .libvips import LOAD_OPTIONS
from .limits import check
from .output import OutputWriteError
from .request import RenderPolicy

INFO_VERSION = 1

# The hashes' render: ThumbHash takes at most 100x100, and neither hash
# keeps more than a 7x7 corner of the DCT, so more pixels add nothing.
HASH_SIDE = MAX_SIDE
# The placeholder's longest side, tried in turn until its data URI fits.
PLACEHOLDER_SIDES = (32, 24, 16, 8)
PLACEHOLDER_QUALITY = 50
MAX_PLACEHOLDER_URI = 600
_WEBP_URI = "data:image/webp;base64,"


@dataclass(frozen=True, slots=True)
class InfoRequest:
    """What a render slot is asked when /info misses the cache: the facts
    of the original (nothing to choose: one document per original)."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The document /info answers with (docs/info.md says what each means)."""

    width: int
    height: int
    format: str
    has_alpha: bool
    frames: int
    bytes: int
    thumbhash: str
    blurhash: str
    dominant: str
    placeholder: str

    def to_json(self) -> builtins.bytes:  # the field ``bytes`` hides the type here
        return json.dumps(asdict(self), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class SmallRender:
    """The upright 8-bit sRGB render the pixel facts come from: its RGBA
    bytes (row by row, not premultiplied), and the image itself."""

    width: int
    height: int
    rgba: bytes
    image: pyvips.Image  # sRGB, with alpha only when the original has it


def write_info(
    policy: RenderPolicy,
    request: InfoRequest,
    facts: HeaderFacts,
    source_fd: int,
    target_fd: int,
) -> None:
    """Write the info document of the original open at ``source_fd``
    (whose header said ``facts``) to ``target_fd``.

    Fails as a render does (``pipeline.render``): ``UnprocessableImage``
    for an original that cannot be decoded or is over a limit,
    ``RenderTimeout`` past the policy's deadline, ``OutputWriteError`` when
    the target's disk fails.
    """
    with Deadline(policy.timeout_seconds) as deadline:
        try:
            # Only the first frame is decoded, whatever the animation's length.
            check(facts, policy, frames=1)
            small = small_render(facts, source_fd, deadline)
            info = ImageInfo(
                width=facts.width,
                height=facts.height,
                format=format_name(facts),
                has_alpha=facts.has_alpha,
                frames=facts.pages if facts.animated else 1,
                bytes=os.fstat(source_fd).st_size,
                thumbhash=thumbhash_base64(small.width, small.height, small.rgba),
                blurhash=encode_blurhash(small.width, small.height, small.rgba),
                dominant=dominant_colour(small.width, small.height, small.rgba),
                placeholder=placeholder_uri(small.image, deadline),
            )
        except (pyvips.Error, UnicodeDecodeError) as error:
            raise failure_of(error, deadline, policy.timeout_seconds) from error
        except UnprocessableImage as refusal:
            release_images(refusal)
            raise
    _write_all(target_fd, info.to_json())


def small_render(facts: HeaderFacts, source_fd: int, deadline: Deadline) -> SmallRender:
    """The original shrunk on load into ``HASH_SIDE`` x ``HASH_SIDE`` (never
    enlarged), upright (thumbnail applies the EXIF orientation), converted
    to sRGB as a render's colour step would, in memory."""
    source = pyvips.Source.new_from_descriptor(source_fd)
    # Any: pyvips' stubs type each option; this dict holds a varying few.
    options: dict[str, Any] = colour.thumbnail_options(facts.needs_colour_management)
    image = pyvips.Image.thumbnail_source(
        source, HASH_SIDE, height=HASH_SIDE, size="down", option_string=LOAD_OPTIONS, **options
    )
    # As the colour step does (colour.to_srgb): 16-bit and other non-8-bit
    # results rescaled (a cast would clip them), then grey given colour
    # bands, since the hashes take RGB.
    if not (image.format == "uchar" and str(image.interpretation) in ("srgb", "b-w")):
        colour_bands = image.bands - int(image.hasalpha())
        image = image.colourspace("b-w" if colour_bands == 1 else "srgb")
    if image.bands < 3:
        image = image.colourspace("srgb")
    if image.bands > 4:
        image = image.extract_band(0, n=4)  # extra bands no viewer shows
    deadline.watch(image)
    image = image.copy_memory()  # computed once, under the deadline's watch
    rgba = image if image.bands == 4 else image.bandjoin_const([255])
    # write_to_memory gives a cffi buffer, whose items are 1-byte strings.
    return SmallRender(image.width, image.height, bytes(rgba.write_to_memory()), image)


def placeholder_uri(image: pyvips.Image, deadline: Deadline) -> str:
    """A WebP of ``image`` at the first of ``PLACEHOLDER_SIDES`` whose data
    URI fits in ``MAX_PLACEHOLDER_URI`` bytes (a 32 px WebP is 100-300
    bytes; the smaller sides are for the rare picture that is all detail)."""
    longest = max(image.width, image.height)
    for side in PLACEHOLDER_SIDES:
        scale = min(1.0, side / longest)
        small = _shrunk(image, scale)
        deadline.watch(small)
        data = small.webpsave_buffer(
            Q=PLACEHOLDER_QUALITY, keep=pyvips.enums.ForeignKeep.NONE, effort=4
        )
        uri = _WEBP_URI + base64.b64encode(data).decode("ascii")
        if len(uri) <= MAX_PLACEHOLDER_URI:
            return uri
    raise UnprocessableImage("the original's placeholder does not fit in 600 bytes")


def _shrunk(image: pyvips.Image, scale: float) -> pyvips.Image:
    """``image`` resized by ``scale`` (at least 1 px a side); alpha
    premultiplied while filtering, so transparent pixels' colour does not
    bleed into the edges."""
    if scale >= 1.0:
        return image
    if not image.hasalpha():
        return image.resize(scale)
    return image.premultiply().resize(scale).unpremultiply().cast("uchar")


def format_name(facts: HeaderFacts) -> str:
    """The original's format, as its loader names it, lower case: heifload
    tells AVIF (AV1) from HEIC and the rest; an Ultra HDR JPEG is a JPEG."""
    name = facts.loader.removesuffix("_source").removesuffix("load")
    if name == "heif":
        return "avif" if facts.own_format is OutputFormat.AVIF else "heif"
    if name == "uhdr":
        return "jpeg"
    return name


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(descriptor, view) :]
    except OSError as error:
        raise OutputWriteError(error) from error
