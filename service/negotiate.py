"""Choose the output format for ``format=auto`` from the ``Accept`` header."""

from __future__ import annotations

from .formats import OutputFormat


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


def _is_zero_quality(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value.strip()) <= 0
    except ValueError:
        return True  # an unreadable weight is no acceptance


def negotiate_format(accept: str) -> OutputFormat | None:
    """AVIF, else WebP, else None (the original's format), per the contract."""
    listed = accepted_media_types(accept)
    if OutputFormat.AVIF.media_type in listed:
        return OutputFormat.AVIF
    if OutputFormat.WEBP.media_type in listed:
        return OutputFormat.WEBP
    return None
