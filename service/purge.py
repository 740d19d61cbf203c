"""Purging originals: everything made from them, in every process at once.

The one operation behind ``POST /admin/purge`` (server/admin.py) and
``image-factory purge`` (cli.py). A purge names originals as the URL does,
after ``/picture/`` (``Original.purge_name``): ``photos/cat.jpg`` for
--originals, ``NAME/photos/cat.jpg`` for the origin NAME, the URL itself for
a ``?url=`` source; ``path`` names one, ``prefix`` every one whose name
starts with it (compared as text, ``photos/`` matching ``photos/a.jpg`` but
also ``photos/b/c.jpg``).

It removes, from the cache indexes (cache.py ``purge``), every entry
committed with a matching original: the result cache's variants (and any
other answer kept there, such as /info's), and the source cache's
freshness records and downloaded bodies, and the mezzanine store's
shrunk copies (service/mezzanine.py). Then it bumps the purge
generation (purge_stamp.py), so every worker drops its memos: the next
request for a purged original asks its origin again and renders anew.
A render or a download already in flight when the purge runs may still
commit after it; purge again to be sure of those.

Each original's CDN tag (``Surrogate-Key`` and ``Cache-Tag`` on every image
response) is the first 16 hex digits of the SHA-256 of its purge name: the
report lists the tags of the originals it removed (of a ``path``: its tag,
removed or not, as a CDN may hold what this cache evicted), for the CDN's
own purge by tag.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .cache import INDEX_NAME, CacheUnavailable, DiskCache, Purged
from .errors import BadRequest
from .purge_stamp import PurgeStamp

_TAG_DIGITS = 16


def cdn_tag(purge_name: str) -> str:
    """The ``Surrogate-Key``/``Cache-Tag`` of an original's responses."""
    digest = hashlib.sha256(purge_name.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:_TAG_DIGITS]


@dataclass(frozen=True, slots=True)
class PurgeTarget:
    """One original (``path``) or every original under a ``prefix``."""

    path: str | None = None
    prefix: str | None = None

    @classmethod
    def from_json(cls, body: bytes) -> PurgeTarget:
        """The body of ``POST /admin/purge``; BadRequest with a one-line
        reason for anything else."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise BadRequest(
                'the body must be JSON: {"path": "..."} or {"prefix": "..."}'
            ) from None
        if not isinstance(document, dict):
            raise BadRequest('the body must be a JSON object: {"path": "..."} or {"prefix": "..."}')
        return cls.from_fields(document)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> PurgeTarget:
        unknown = sorted(set(fields) - {"path", "prefix"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0][:40]!r}: give path or prefix")
        if ("path" in fields) == ("prefix" in fields):
            raise BadRequest("give exactly one of path and prefix")
        field = "path" if "path" in fields else "prefix"
        value = fields[field]
        if not isinstance(value, str):
            raise BadRequest(f"{field} must be a string")
        if not value:
            raise BadRequest(f"{field} must not be empty")
        if "\0" in value or not _encodable(value):
            raise BadRequest(f"{field} must be text without NUL or lone surrogates")
        if value.startswith("/"):
            raise BadRequest(
                f"{field}: name the original as the URL does after /picture/, with no leading /"
            )
        if field == "path":
            return cls(path=_as_served(value))
        return cls(prefix=value)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge removed: entries of each cache, and the CDN tags."""

    variants: int  # result-cache entries: renders, and any other answer kept there
    sources: int  # source-cache entries: freshness records and bodies
    originals: int  # the originals something was removed of
    tags: tuple[str, ...]
    mezzanines: int = 0  # the mezzanine store's shrunk copies

    def to_json(self) -> dict[str, object]:
        return {
            "removed": {
                "variants": self.variants,
                "sources": self.sources,
                "mezzanines": self.mezzanines,
            },
            "originals": self.originals,
            "tags": list(self.tags),
        }


def purge(
    target: PurgeTarget,
    results: DiskCache | None,
    sources: DiskCache | None,
    stamp: PurgeStamp | None,
    mezzanines: DiskCache | None = None,
) -> PurgeReport:
    """Blocking: remove what was made from the target's originals, from the
    result cache, the source cache and the mezzanine store (None: there is
    none), then tell every process through ``stamp``. CacheUnavailable when an index cannot be
    used: what was removed before stays removed, and the processes are told."""
    try:
        variants = _purged(results, target)
        downloaded = _purged(sources, target)
        shrunk = _purged(mezzanines, target)
    finally:
        if stamp is not None:
            _tell_every_process(stamp)
    names = variants.originals | downloaded.originals | shrunk.originals
    tags = {cdn_tag(name) for name in names}
    if target.path is not None:
        tags.add(cdn_tag(target.path))
    return PurgeReport(
        variants=variants.entries,
        sources=downloaded.entries,
        originals=len(names),
        tags=tuple(sorted(tags)),
        mezzanines=shrunk.entries,
    )


def _tell_every_process(stamp: PurgeStamp) -> None:
    try:
        stamp.bump()
    except OSError as error:
        raise CacheUnavailable(f"the purge generation cannot be written: {error}") from error


def _purged(cache: DiskCache | None, target: PurgeTarget) -> Purged:
    if cache is None:
        return Purged(0, frozenset())
    return cache.purge(original=target.path, prefix=target.prefix)


def purge_directories(
    target: PurgeTarget, cache_dir: str, sources_dir: str, mezzanine_dir: str | None = None
) -> PurgeReport:
    """Blocking: ``purge`` from outside the service (``image-factory purge``),
    on the directories themselves, whether or not a service runs on them.
    The indexes are connected to, never opened as a service opens them: no
    reconciling and no eviction, whose bound this command does not know. A
    directory without an index has nothing to purge (none is made)."""
    results = _index_of(cache_dir)
    sources = _index_of(sources_dir)
    mezzanines = _index_of(mezzanine_dir or os.path.join(cache_dir, "mezzanine"))
    # The workers of this cache directory, if it exists, are told.
    stamp = PurgeStamp(cache_dir) if os.path.isdir(cache_dir) else None
    try:
        return purge(target, results, sources, stamp, mezzanines)
    finally:
        if stamp is not None:
            stamp.close()
        for cache in (results, sources, mezzanines):
            if cache is not None:
                cache.close()


def _index_of(directory: str) -> DiskCache | None:
    if not os.path.exists(os.path.join(directory, INDEX_NAME)):
        return None
    return DiskCache(directory, max_bytes=1)  # the bound is never used by a purge


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_served(path: str) -> str:
    """A ``?url=`` source's URL as the service names it (handlers.py: parsed,
    without its fragment); any other path as given."""
    if not path.startswith(("http://", "https://")):
        return path
    try:
        return str(URL(path).with_fragment(None))
    except ValueError:
        return path
