"""HTTP handlers: /picture/<path>, /healthz."""

from __future__ import annotations

import os

from aiohttp import web
from multidict import CIMultiDict

from ..errors import Forbidden, SourceTooLarge
from ..metrics import CONTENT_TYPE
from ..negotiate import FormatChoice, choose_format
from ..render import RenderRequest
from ..signing import verify
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
    spec = parse_spec(
        request.query.items(),
        max_output_size=settings.max_output_size,
        presets=settings.presets,
        presets_only=settings.presets_only,
    )
    choice = choose_format(spec.format, spec.auto_format, request.headers.get("Accept", ""))
    # One trip off the event loop: resolve the original, key it, and open a
    # cached render if there is one (the common case is a hit).
    located = await renders.to_thread(
        state.locator(app).locate,
        request.match_info["path"],
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
    served = located.cached or await renders.cached_or_rendered(
        located.key.digest,
        located.original,
        _render_request(spec, choice),
        request_id=request.get(state.REQUEST_ID, ""),
    )
    headers["Content-Type"] = served.format.media_type
    headers["X-Cache"] = "HIT" if served.hit else "MISS"
    request[state.CACHE_STATUS] = headers["X-Cache"]
    if served.render_seconds is not None:
        request[state.RENDER_SECONDS] = served.render_seconds
    return DescriptorResponse(served.descriptor, served.size, headers)


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
