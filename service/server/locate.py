"""From a request's original and spec to its variant: the original, the key,
and the cached file when there is one. Blocking (stat, open, SQLite): the
handler runs it off the event loop, in one trip."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..formats import OutputFormat
from ..header_memo import facts_or_none
from ..keys import VariantKey, variant_key
from ..negotiate import FormatChoice
from ..renders import RenderService, Served
from ..sources import Original
from ..spec import RequestSpec


@dataclass(frozen=True, slots=True)
class Located:
    original: Original
    key: VariantKey
    not_modified: bool  # If-None-Match named the key's ETag: answer 304
    cached: Served | None


@dataclass(frozen=True, slots=True)
class Locator:
    """Built once per process with what keys take from it besides the request."""

    renders: RenderService
    output_settings: str
    quality: Mapping[OutputFormat, int]
    allow_svg: bool

    def locate(
        self,
        resolve: Callable[[], Original],
        spec: RequestSpec,
        choice: FormatChoice,
        if_none_match: str | None,
    ) -> Located:
        """The original (``resolve`` stats a local one), its variant's key,
        and the cached file if any. A matching If-None-Match is answered
        from the key alone."""
        original = resolve()
        key = variant_key(
            output_settings=self.output_settings,
            original=original,
            spec=spec,
            choice=choice,
            quality=self.quality,
            content=lambda: facts_or_none(original, allow_svg=self.allow_svg),
        )
        if etag_matches(if_none_match, key.etag):
            return Located(original, key, not_modified=True, cached=None)
        return Located(
            original, key, not_modified=False, cached=self.renders.open_cached(key.digest)
        )


def etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {item.strip().removeprefix("W/") for item in header.split(",")}
    return etag in candidates or "*" in candidates
