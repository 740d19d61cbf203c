"""From a request's original and spec to its variant: the original, its
canonical request, the key, and the cached file when there is one, or
else what its render needs first (``RenderService.prepare``). Blocking
(stat, a header read once per original, open, SQLite): the handler runs
it off the event loop, in one trip; the same request again within a
second opens its file on the loop (``open_remembered``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..canonical import Canonical, OriginalFacts, canonical
from ..errors import OriginalReplaced
from ..formats import OutputFormat, Quality
from ..header_memo import facts_of
from ..keys import VariantKey, variant_key
from ..ladder import Ladder
from ..negotiate import FormatChoice
from ..renders import Prepared, RenderService, Served
from ..sources import Original, OriginalChanged
from ..spec import RequestSpec


@dataclass(frozen=True, slots=True)
class Located:
    original: Original
    canonical: Canonical  # what the render produces: keyed, and rendered, so
    key: VariantKey
    not_modified: bool  # If-None-Match named the key's ETag: answer 304
    cached: Served | None
    # For a local original not in the cache: its render's first step, done
    # in this trip rather than in one more (RenderService.cached_or_rendered).
    prepared: Prepared | None = None


@dataclass(frozen=True, slots=True)
class Locator:
    """Built once per process with what keys take from it besides the request."""

    renders: RenderService
    output_settings: str
    quality: Mapping[OutputFormat, Quality]
    allow_svg: bool
    max_output_size: int
    ladder: Ladder | None
    # --mezzanine: a variant's bytes depend on whether its original's
    # mezzanine existed when it was rendered (docs/mezzanine.md).
    weak_etags: bool = False
    # --auto-quality-target: part of the key of every q=auto variant.
    auto_quality_target: float | None = None

    def locate(
        self,
        resolve: Callable[[], Original],
        spec: RequestSpec,
        choice: FormatChoice,
        if_none_match: str | None,
        *,
        facts: OriginalFacts | None = None,
        request_id: str = "",
    ) -> Located:
        """The original (``resolve`` stats a local one), its canonical
        request (from ``facts``, a remote original's, or its header's, read
        once per original), its variant's key, and the cached file if any,
        else, for a local original, its render prepared (``request_id``
        names the request in the crash log). A matching If-None-Match is
        answered from the key alone."""
        local = facts is None
        original = resolve()
        if facts is None:
            try:
                facts = facts_of(original, allow_svg=self.allow_svg)
            except OriginalChanged:
                raise OriginalReplaced(
                    "the original changed during the request, try again"
                ) from None
        wanted = canonical(
            spec, choice, facts, max_output_size=self.max_output_size, ladder=self.ladder
        )
        key = variant_key(
            output_settings=self.output_settings,
            original=original,
            canonical=wanted,
            quality=self.quality,
            weak=self.weak_etags,
            auto_quality_target=self.auto_quality_target,
        )
        if etag_matches(if_none_match, key.etag):
            return Located(original, wanted, key, not_modified=True, cached=None)
        cached = self.renders.open_cached(key.digest)
        # A remote original's body is fetched after this: its render is
        # prepared with it.
        prepared = (
            None if cached is not None or not local else self.renders.prepare(original, request_id)
        )
        return Located(original, wanted, key, False, cached, prepared)

    def open_remembered(self, digest: str) -> Served | None:
        """The cached render of ``digest`` if this process's memo of the
        cache has it, open and counted as a hit; None otherwise. Reads no
        index: fit for the event loop (server/hit_memo.py)."""
        found = self.renders.cache.open_remembered(digest)
        if found is None:
            return None
        entry, descriptor = found
        self.renders.metrics.cache_hits.inc()
        return Served(descriptor, entry.size, entry.format, hit=True)


def etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    # The weak comparison (RFC 9110, 8.8.3.2), which If-None-Match uses.
    candidates = {item.strip().removeprefix("W/") for item in header.split(",")}
    return etag.removeprefix("W/") in candidates or "*" in candidates
