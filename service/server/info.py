"""HTTP handler: /info/<path> and /info?url=, an original's facts as JSON.

The original is found, signed, limited and fetched exactly as for
/picture (the same signature check, origins, ``?url=`` sources and
``sources.original`` then ``with_body`` on a miss); the document is
computed in a render slot from one small render (``render.info``) and
cached like a variant, keyed by the original's identity, the server's
output settings and ``INFO_VERSION``. So a second call is a file read, and
If-None-Match is answered from the key alone. docs/info.md gives the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from ..errors import BadRequest, OriginalReplaced, SourceTooLarge
from ..keys import VariantKey, info_key
from ..origins.routes import LocalTarget, RemoteTarget
from ..origins.source_cache import OriginalChangedRemotely
from ..purge import cdn_tag
from ..render import INFO_VERSION, InfoRequest
from ..renders import Computed, RenderService
from ..sources import Original
from . import state
from .handlers import cache_control, check_signature, original_of, target_of, url_and_parameters
from .locate import etag_matches

# /info takes no options: the signature, and ``url`` for a ?url= source
# (which url_and_parameters has taken out already).
_PARAMETERS = frozenset({"s"})
_INFO = InfoRequest()


@dataclass(frozen=True, slots=True)
class _Located:
    original: Original
    key: VariantKey
    not_modified: bool
    cached: bytes | None


async def info(request: web.Request) -> web.StreamResponse:
    app = request.app
    check_signature(request)
    url, parameters = url_and_parameters(request)
    _check_parameters(parameters)
    try:
        tag = cdn_tag(request.match_info["path"] if url is None else str(url))
        return await _document(request, target_of(request, url), tag)
    except SourceTooLarge:
        state.metrics(app).rejected.labels(reason="source_limit").inc()
        raise


def _check_parameters(parameters: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for name, _ in parameters:
        if name not in _PARAMETERS:
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise BadRequest(
                f"unknown parameter {shown!r}: /info takes only s, and url without a path"
            )
        if name in seen:
            raise BadRequest(f"{name} is given twice")
        seen.add(name)


async def _document(
    request: web.Request, target: LocalTarget | RemoteTarget, tag: str
) -> web.StreamResponse:
    key, computed = await document(request, target, request.headers.get("If-None-Match"))
    headers = CIMultiDict[str]()
    headers["ETag"] = key.etag
    headers["Cache-Control"] = cache_control(state.settings(request.app))
    # Purged with its original's variants, at the CDN too (service/purge.py).
    headers["Surrogate-Key"] = tag
    headers["Cache-Tag"] = tag
    if computed is None:
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/json"
    headers["X-Cache"] = "HIT" if computed.hit else "MISS"
    request[state.CACHE_STATUS] = headers["X-Cache"]
    if computed.render_seconds is not None:
        request[state.RENDER_SECONDS] = computed.render_seconds
    return web.Response(body=computed.body, headers=headers)


async def document(
    request: web.Request, target: LocalTarget | RemoteTarget, if_none_match: str | None
) -> tuple[VariantKey, Computed | None]:
    """The original's document (JSON bytes): cached, or computed in a
    render slot; None when ``if_none_match`` names its key's ETag."""
    app = request.app
    renders = state.renders(app)
    sources = state.origins(app).sources
    resolve, _ = await original_of(request, target)
    located = await renders.to_thread(
        _locate, renders, state.output_settings(app), resolve, if_none_match
    )
    if located.not_modified:
        return located.key, None
    if located.cached is not None:
        return located.key, Computed(located.cached, hit=True)
    original = located.original
    if isinstance(target, RemoteTarget):
        assert sources is not None
        try:
            original = await sources.with_body(target.source, original)
        except OriginalChangedRemotely:
            raise OriginalReplaced("the original changed at its origin, try again") from None
    computed = await renders.cached_or_computed(
        located.key.digest, original, _INFO, request_id=request.get(state.REQUEST_ID, "")
    )
    return located.key, computed


def _locate(
    renders: RenderService,
    output_settings: str,
    resolve: Callable[[], Original],
    if_none_match: str | None,
) -> _Located:
    """Blocking, in one trip off the loop: the original (``resolve`` stats
    a local one), its document's key, and the cached document if any."""
    original = resolve()
    key = info_key(output_settings=output_settings, original=original, info_version=INFO_VERSION)
    if etag_matches(if_none_match, key.etag):
        return _Located(original, key, not_modified=True, cached=None)
    return _Located(original, key, not_modified=False, cached=renders.read_cached(key.digest))
