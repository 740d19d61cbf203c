"""The header facts of each original, read once per process and identity.

The cache key (its canonical request), the decode budget and the render
all ask the same questions of an original's header;
this reads it once and keeps the answer, refusals included, for as long as
the original's identity (path, size, mtime, inode) stands: a rewritten file
is a new ``Original`` and is read anew. Nothing here decodes a pixel.
"""

from __future__ import annotations

import functools
import os

from .canonical import OutputFacts
from .errors import UnprocessableImage
from .render import HeaderFacts, read_facts
from .sources import Original, open_original

# Facts are ~200 bytes: 4,096 originals is under a megabyte. Rights text
# adds its length (a few dozen bytes where there is any; bounded at 12 KB).
_REMEMBERED_ORIGINALS = 4096


def facts_of(original: Original, *, allow_svg: bool) -> HeaderFacts:
    """Blocking: the facts of ``original``. Raises UnprocessableImage when
    its header is refused (not an image, a type we do not accept), and
    OriginalChanged when it cannot be opened as the file that was resolved
    (neither is remembered: a replaced file, or descriptors running out,
    passes)."""
    remembered = _remembered(original, allow_svg)
    if isinstance(remembered, str):
        raise UnprocessableImage(remembered)
    return remembered


def output_facts_of(original: Original, *, allow_svg: bool) -> OutputFacts:
    """Blocking: what the canonical request needs of the header, as
    ``facts_of`` reads it (and raises)."""
    return OutputFacts.of(facts_of(original, allow_svg=allow_svg))


def forget_all() -> None:
    """Drop every original's facts (after a purge)."""
    _remembered.cache_clear()


@functools.lru_cache(maxsize=_REMEMBERED_ORIGINALS)
def _remembered(original: Original, allow_svg: bool) -> HeaderFacts | str:
    """The facts, or the refusal's one-line reason (refusals are remembered
    too: a broken original asked for often costs one read)."""
    descriptor = open_original(original)
    try:
        return read_facts(descriptor, allow_svg=allow_svg)
    except UnprocessableImage as refusal:
        return refusal.message
    finally:
        os.close(descriptor)
