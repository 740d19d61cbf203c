"""Output formats, their media types, and which input formats we accept.

Pure data: nothing here touches libvips. Loader names are libvips'
``vips-loader`` header values; the allow-list is checked against them because
``block_untrusted_set`` does not cover every loader (``matrixload`` happily
opens a text file named ``.png``).
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal

# q=auto (render/auto_quality.py): the lowest q whose SSIMULACRA2 reaches
# --auto-quality-target. A quality is a number 1-100 or this.
AUTO_QUALITY: Final = "auto"
Quality = int | Literal["auto"]
# Its default target (--auto-quality-target; docs/quality.md, "q=auto").
DEFAULT_AUTO_QUALITY_TARGET: Final = 80.0


class OutputFormat(Enum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]

    @property
    def suffix(self) -> str:
        """The file suffix libvips picks its saver by (never user text)."""
        return _SUFFIXES[self]

    @property
    def has_alpha(self) -> bool:
        return self is not OutputFormat.JPEG

    @property
    def animates(self) -> bool:
        """Whether we write animations in this format (AVIF sequences: no)."""
        return self in (OutputFormat.GIF, OutputFormat.WEBP)

    @property
    def uses_quality(self) -> bool:
        """Whether ``q`` changes the output (PNG and GIF here are lossless)."""
        return self in (OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.AVIF)


# The fixed q per lossy format when --quality sets none (settings), chosen
# by measurement (docs/quality.md): WebP 80 and AVIF 60 match JPEG 80's
# PSNR within ~0.5 dB at 30-60 % of its bytes on 800-px photos. q=auto's
# search starts from them, and encodes animations at them.
FIXED_QUALITY: Final[dict[OutputFormat, int]] = {
    OutputFormat.JPEG: 80,
    OutputFormat.WEBP: 80,
    OutputFormat.AVIF: 60,
}

_MEDIA_TYPES = {
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.PNG: "image/png",
    OutputFormat.WEBP: "image/webp",
    OutputFormat.AVIF: "image/avif",
    OutputFormat.GIF: "image/gif",
}
_SUFFIXES = {
    OutputFormat.JPEG: ".jpg",
    OutputFormat.PNG: ".png",
    OutputFormat.WEBP: ".webp",
    OutputFormat.AVIF: ".avif",
    OutputFormat.GIF: ".gif",
}

# The names a request may use for each format (matched case-insensitively).
FORMAT_NAMES: dict[str, OutputFormat] = {
    "jpeg": OutputFormat.JPEG,
    "jpg": OutputFormat.JPEG,
    "png": OutputFormat.PNG,
    "webp": OutputFormat.WEBP,
    "avif": OutputFormat.AVIF,
    "gif": OutputFormat.GIF,
}

# Loaders we accept, by libvips' name, with the output format an original of
# that kind keeps when the request names none (None: not writable, so PNG when
# it has alpha, else JPEG). heifload covers AVIF and HEIC; the pipeline tells
# them apart by compression.
ACCEPTED_LOADERS: dict[str, OutputFormat | None] = {
    "jpegload_source": OutputFormat.JPEG,
    "uhdrload_source": OutputFormat.JPEG,  # Ultra HDR JPEGs load through their own loader
    "pngload_source": OutputFormat.PNG,
    "webpload_source": OutputFormat.WEBP,
    "gifload_source": OutputFormat.GIF,
    "heifload_source": OutputFormat.AVIF,
    "tiffload_source": None,
}


def fallback_format(has_alpha: bool) -> OutputFormat:
    """The format for an original whose own format we cannot write."""
    return OutputFormat.PNG if has_alpha else OutputFormat.JPEG
