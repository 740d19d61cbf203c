"""Choose the output format for ``format=auto`` from the ``Accept`` header."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .formats import OutputFormat


@dataclass(frozen=True, slots=True)
class FormatChoice:
    """The output format a request asks for, before the original is seen.

    ``format`` None means the original's own format. For ``format=auto``,
    AVIF is only chosen for still images: an animated original gets
    ``animated_fallback`` instead (WebP when the client takes it, else, as
    None, its own format).
    """

    format: OutputFormat | None = None
    negotiated: bool = False
    animated_fallback: OutputFormat | None = None

    @property
    def token(self) -> str:
        """The part of the cache key that names the format."""
        name = self.format.value if self.format else "original"
        if self.negotiated and self.format is OutputFormat.AVIF:
            fallback = self.animated_fallback.value if self.animated_fallback else "original"
            return f"auto:{name}/{fallback}"
        return name


def accepted_media_types(accept: str) -> set[str]:
    """Media types listed explicitly with q > 0 (wildcards count for none)."""
    listed: set[str] = set()
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if not media_type or "*" in media_type:
            continue
        if any(_is_zero_quality(param) for param in params):
            continue
        listed.add(media_type.lower())
    return listed


# RFC 9110's qvalue: 0 to 1 with at most three decimals. float() alone would
# take "nan" (which compares as not <= 0), "inf" and "1e-3".
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", re.ASCII)


def _is_zero_quality(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    weight = value.strip()
    if not _QVALUE.fullmatch(weight):
        return True  # an unreadable weight is no acceptance
    return float(weight) == 0


def negotiate_format(accept: str) -> OutputFormat | None:
    """AVIF, else WebP, else None (the original's format), per the contract."""
    listed = accepted_media_types(accept)
    if OutputFormat.AVIF.media_type in listed:
        return OutputFormat.AVIF
    if OutputFormat.WEBP.media_type in listed:
        return OutputFormat.WEBP
    return None


def choose_format(requested: OutputFormat | None, auto: bool, accept: str) -> FormatChoice:
    """The request's format choice: explicit, negotiated, or the original's."""
    if not auto:
        return FormatChoice(requested)
    negotiated = negotiate_format(accept)
    webp = OutputFormat.WEBP.media_type in accepted_media_types(accept)
    return FormatChoice(
        negotiated, negotiated=True, animated_fallback=OutputFormat.WEBP if webp else None
    )
