"""The URL that names an output by its size: ``Content-Location`` on a
width ladder, and each candidate of ``/srcset``.

Relative: the same path and parameters, with the size served (``w``, and
``h`` for a box; a ``dpr`` or a hint folded into them), and signed when
signing is on. So a CDN or a page names every output by one URL, a client
sees which step it was given, and asking for that URL is a cache hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

from aiohttp import web

from ..canonical import Canonical
from ..signing import sign_url

# The parameters that the served size replaces (``s`` is made anew).
SIZE_NAMES = frozenset({"w", "scalex", "h", "scaley", "dpr", "s"})


def canonical_url(request: web.Request, wanted: Canonical, signing_keys: Sequence[str]) -> str:
    """The relative URL of ``wanted``, the request's canonical output."""
    return url_for(
        request.raw_path.partition("?")[0], list(request.query.items()), wanted, signing_keys
    )


def url_for(
    path: str,
    parameters: Sequence[tuple[str, str]],
    wanted: Canonical,
    signing_keys: Sequence[str],
) -> str:
    """``path`` (as sent: percent-encoded) with ``parameters`` (decoded),
    their size replaced by ``wanted``'s."""
    spec = wanted.spec
    width = wanted.output_width or spec.width  # trim's: its width as asked, snapped
    size: list[tuple[str, str]] = []
    if width is not None:
        size.append(("w", str(width)))
        # A preset's height follows its width (a ladder w replaces it).
        preset = any(name == "preset" for name, _ in parameters)
        if wanted.boxed and not preset:
            size.append(("h", str(wanted.output_height or spec.height)))
    kept = [(name, value) for name, value in parameters if name not in SIZE_NAMES]
    query = urlencode(size + kept, quote_via=quote, safe="/,:")
    url = f"{path}?{query}" if query else path
    if signing_keys:
        url = sign_url(url, signing_keys[0])
    return url
