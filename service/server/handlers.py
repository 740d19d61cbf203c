"""HTTP handlers: /picture/<path>, /healthz."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..errors import BadRequest, Forbidden, NotFound, OriginalReplaced, SourceTooLarge
from ..metrics import CONTENT_TYPE
from ..negotiate import FormatChoice, choose_format
from ..origins.routes import LocalTarget, RemoteTarget
from ..origins.source_cache import OriginalChangedRemotely, Source
from ..render import RenderRequest
from ..signing import verify
from ..sources import Original
from ..spec import RequestSpec, parse_spec
from . import state
from .responses import DescriptorResponse


async def picture(request: web.Request) -> web.StreamResponse:
    try:
        return await _picture(request)
    except SourceTooLarge:
        # Refused by a source limit (pixels, frames, bytes, decode memory,
        # scans): the limits an operator tunes, so counted apart from the
        # 422s of broken files, which requests_total already has.
        state.metrics(request.app).rejected.labels(reason="source_limit").inc()
        raise


async def _picture(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = state.settings(app)
    renders = state.renders(app)
    # Before anything else: a bad signature is a 403 even for a missing file.
    if settings.signing_keys and not verify(request.raw_path, settings.signing_keys):
        state.metrics(app).rejected.labels(reason="bad_signature").inc()
        raise Forbidden("the URL signature is missing or wrong")
    target, parameters = _target(request)
    spec = parse_spec(
        parameters,
        max_output_size=settings.max_output_size,
        presets=settings.presets,
        presets_only=settings.presets_only,
    )
    choice = choose_format(spec.format, spec.auto_format, request.headers.get("Accept", ""))
    sources = state.origins(app).sources
    resolve: Callable[[], Original]
    if isinstance(target, LocalTarget):
        resolve = partial(target.directory.resolve, target.path)
    else:
        request[state.ORIGIN] = target.source.client.name
        assert sources is not None  # opened whenever an origin is remote
        remote = await sources.original(target.source)
        resolve = partial(_same, remote)
    # One trip off the event loop: resolve the original, key it, and open a
    # cached render if there is one (the common case is a hit).
    located = await renders.to_thread(
        state.locator(app).locate,
        resolve,
        spec,
        choice,
        request.headers.get("If-None-Match"),
    )
    headers = CIMultiDict[str]()
    headers["ETag"] = located.key.etag
    headers["Cache-Control"] = f"public, max-age={settings.max_age}"
    if spec.auto_format:
        headers["Vary"] = "Accept"
    if located.not_modified:
        return web.Response(status=304, headers=headers)
    original = located.original
    if located.cached is None and isinstance(target, RemoteTarget):
        assert sources is not None
        try:
            original = await sources.with_body(target.source, original)
        except OriginalChangedRemotely:
            raise OriginalReplaced("the original changed at its origin, try again") from None
    served = located.cached or await renders.cached_or_rendered(
        located.key.digest,
        original,
        _render_request(spec, choice),
        request_id=request.get(state.REQUEST_ID, ""),
    )
    headers["Content-Type"] = served.format.media_type
    headers["X-Cache"] = "HIT" if served.hit else "MISS"
    request[state.CACHE_STATUS] = headers["X-Cache"]
    if served.render_seconds is not None:
        request[state.RENDER_SECONDS] = served.render_seconds
    return DescriptorResponse(served.descriptor, served.size, headers)


def _same(original: Original) -> Original:
    return original


def _target(request: web.Request) -> tuple[LocalTarget | RemoteTarget, list[tuple[str, str]]]:
    """Where the original is (an origin's path, or a ``?url=`` source), and
    the rest of the query for the spec."""
    parameters = list(request.query.items())
    path = request.match_info.get("path")
    if path is not None:
        return state.origins(request.app).routes.target(path), parameters
    url_sources = state.origins(request.app).url_sources
    if url_sources is None:
        raise NotFound("URL sources are off (--url-sources)")
    urls = [value for name, value in parameters if name == "url"]
    if len(urls) != 1:
        raise BadRequest("url: give the original's absolute http(s) URL once")
    try:
        url = URL(urls[0])
        host = url.raw_host  # decodes IDNA: may fail on a malformed label
        # The source is keyed and fetched by its text: it must read back
        # as the same URL ("[::ffff:1.2.3]" is no IPv6 literal, and would not).
        if URL(str(url)) != url:
            raise ValueError("does not round-trip")
    except ValueError:  # UnicodeError included
        raise BadRequest("url: not a valid URL") from None
    if url.scheme not in ("http", "https") or not host or not url.is_absolute():
        raise BadRequest("url: must be an absolute http or https URL")
    source = Source(url_sources, str(url.with_fragment(None)))
    return RemoteTarget(source), [item for item in parameters if item[0] != "url"]


def _render_request(spec: RequestSpec, choice: FormatChoice) -> RenderRequest:
    return RenderRequest(
        width=spec.width,
        height=spec.height,
        format=choice.format,
        background=spec.background,
        quality=spec.quality,
        fit=spec.fit,
        gravity=spec.gravity,
        negotiated=choice.negotiated,
        animated_fallback=choice.animated_fallback,
    )


async def healthz(request: web.Request) -> web.Response:
    # The pid tells operators (and tests) which worker answered.
    if state.lifecycle(request.app).draining:
        return web.json_response(
            {"status": "shutting down", "pid": os.getpid()},
            status=503,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def metrics_handler(request: web.Request) -> web.Response:
    app = request.app
    body = await state.renders(app).to_thread(state.metrics(app).exposition)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
