"""HTTP handlers: /picture/<path>, /healthz."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from .access_log import CACHE_STATUS, RENDER_SECONDS
from .errors import Forbidden, SourceTooLarge
from .keys import VariantKey, variant_key
from .metrics import CONTENT_TYPE, Metrics
from .negotiate import FormatChoice, choose_format
from .pipeline import RenderRequest
from .responses import DescriptorResponse
from .settings import Settings
from .signing import verify
from .sources import Original, OriginalsDirectory
from .spec import RequestSpec, parse_spec
from .workers import RenderService, Served, own_output_of

SETTINGS = web.AppKey("settings", Settings)
ORIGINALS = web.AppKey("originals", OriginalsDirectory)
RENDERS = web.AppKey("renders", RenderService)
PIPELINE_VERSION = web.AppKey("pipeline_version", str)
METRICS = web.AppKey("metrics", Metrics)


class Lifecycle:
    """Whether the process is draining (/healthz says 503: set once shutdown
    has begun) and whether it is stopping (no longer accepting)."""

    def __init__(self) -> None:
        self.draining = False
        self.stopping = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


async def picture(request: web.Request) -> web.StreamResponse:
    try:
        return await _picture(request)
    except SourceTooLarge:
        # Refused by a source limit (pixels, frames, bytes, decode memory,
        # scans): the limits an operator tunes, so counted apart from the
        # 422s of broken files, which requests_total already has.
        request.app[METRICS].rejected.labels(reason="source_limit").inc()
        raise


async def _picture(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    renders = app[RENDERS]
    # Before anything else: a bad signature is a 403 even for a missing file.
    if settings.signing_keys and not verify(request.raw_path, settings.signing_keys):
        app[METRICS].rejected.labels(reason="bad_signature").inc()
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
    located = await renders.io(
        _locate, app, request.match_info["path"], spec, choice, request.headers.get("If-None-Match")
    )
    headers = CIMultiDict[str]()
    headers["ETag"] = located.key.etag
    headers["Cache-Control"] = f"public, max-age={settings.max_age}"
    if spec.auto_format:
        headers["Vary"] = "Accept"
    if located.not_modified:
        return web.Response(status=304, headers=headers)
    served = located.cached or await renders.fetch(
        located.key.digest, located.original, _render_request(settings, spec, choice)
    )
    headers["Content-Type"] = served.format.media_type
    headers["X-Cache"] = "HIT" if served.hit else "MISS"
    request[CACHE_STATUS] = headers["X-Cache"]
    if served.render_seconds is not None:
        request[RENDER_SECONDS] = served.render_seconds
    return DescriptorResponse(served.descriptor, served.size, headers)


@dataclass(frozen=True, slots=True)
class _Located:
    original: Original
    key: VariantKey
    not_modified: bool
    cached: Served | None


def _locate(
    app: web.Application,
    path: str,
    spec: RequestSpec,
    choice: FormatChoice,
    if_none_match: str | None,
) -> _Located:
    """Blocking: the original, its variant's key, and the cached file if any.
    A matching If-None-Match is answered from the key alone."""
    original = app[ORIGINALS].resolve(path)
    settings = app[SETTINGS]
    key = variant_key(
        pipeline_version=app[PIPELINE_VERSION],
        original=original,
        spec=spec,
        choice=choice,
        quality=settings.quality,
        content=lambda: own_output_of(original, allow_svg=settings.enable_svg),
    )
    if _etag_matches(if_none_match, key.etag):
        return _Located(original, key, not_modified=True, cached=None)
    return _Located(original, key, not_modified=False, cached=app[RENDERS].open_cached(key.digest))


def _render_request(settings: Settings, spec: RequestSpec, choice: FormatChoice) -> RenderRequest:
    quality = dict(settings.quality)
    if spec.quality is not None:
        quality = dict.fromkeys(quality, spec.quality)
    return RenderRequest(
        width=spec.width,
        height=spec.height,
        format=choice.format,
        quality=quality,
        background=spec.background,
        max_output_size=settings.max_output_size,
        max_source_pixels=settings.max_source_pixels,
        avif_effort=settings.avif_effort,
        fit=spec.fit,
        gravity=spec.gravity,
        max_frames=settings.max_frames,
        negotiated=choice.negotiated,
        animated_fallback=choice.animated_fallback,
        timeout_seconds=settings.render_timeout,
        allow_svg=settings.enable_svg,
        max_decode_bytes=settings.max_decode_bytes,
    )


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {item.strip().removeprefix("W/") for item in header.split(",")}
    return etag in candidates or "*" in candidates


async def healthz(request: web.Request) -> web.Response:
    # The pid tells operators (and tests) which worker answered.
    if request.app[LIFECYCLE].draining:
        return web.json_response(
            {"status": "shutting down", "pid": os.getpid()},
            status=503,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def metrics_handler(request: web.Request) -> web.Response:
    app = request.app
    body = await app[RENDERS].io(app[METRICS].exposition)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
