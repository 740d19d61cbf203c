"""HTTP handlers: /picture/<path>, /healthz."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..canonical import Canonical, OutputFacts
from ..client_hints import ACCEPT_CH, NO_HINTS, VARY, read_hints
from ..errors import (
    BadRequest,
    Forbidden,
    NotFound,
    OriginalReplaced,
    SourceTooLarge,
    UnprocessableImage,
)
from ..header_memo import output_facts_of
from ..metrics import CONTENT_TYPE
from ..negotiate import FormatChoice, choose_format
from ..origins.routes import LocalTarget, RemoteTarget
from ..origins.source_cache import OriginalChangedRemotely, Source
from ..purge import cdn_tag
from ..render import RenderRequest
from ..renders import Served
from ..settings import Settings
from ..signing import verify
from ..sources import Original
from ..spec import RequestSpec, parse_spec
from ..timings import HEADER as TIMING_HEADER
from ..timings import Timings
from . import state
from .canonical_url import canonical_url
from .fallback import Fallback, fallback_spec
from .hit_memo import Remembered
from .locate import etag_matches
from .responses import DescriptorResponse


def check_signature(request: web.Request) -> None:
    """Forbidden unless signing is off or the URL carries a valid
    signature: the first thing each endpoint does, so a bad one is a 403
    even for a missing file."""
    app = request.app
    keys = state.settings(app).signing_keys
    if keys and not verify(request.raw_path, keys):
        state.metrics(app).rejected.labels(reason="bad_signature").inc()
        raise Forbidden("the URL signature is missing or wrong")


async def picture(request: web.Request) -> web.StreamResponse:
    app = request.app
    memo = state.hit_memo(app)
    identity = memo.identity(request)
    remembered = memo.get(identity)
    if remembered is not None:
        answer = _remembered_answer(request, remembered, state.settings(app).server_timing)
        if answer is not None:
            return answer
        memo.forget(identity)  # evicted or purged: the full way finds out
    settings = state.settings(app)
    check_signature(request)
    url, parameters = url_and_parameters(request)
    spec = parse_spec(
        parameters,
        max_output_size=settings.max_output_size,
        presets=settings.presets,
        presets_only=settings.presets_only,
        overlays=state.overlay_fingerprints(app),
        default_overlay=settings.default_overlay,
        ladder=bool(settings.widths),
        hints=read_hints(request.headers) if settings.client_hints else NO_HINTS,
    )
    choice = choose_format(spec.format, spec.auto_format, request.headers.get("Accept", ""))
    # The original as a purge names it, as the URL does (service/purge.py):
    # the fallback answered for it carries its tag too, so that purging it
    # at the CDN replaces the fallback once the real image exists.
    tag = cdn_tag(request.match_info["path"] if url is None else str(url))
    try:
        return await _variant(request, target_of(request, url), spec, choice, tag)
    except (NotFound, UnprocessableImage) as refusal:
        if isinstance(refusal, SourceTooLarge):
            # Refused by a source limit (pixels, frames, bytes, decode
            # memory, scans): the limits an operator tunes, so counted apart
            # from the 422s of broken files, which requests_total already has.
            state.metrics(app).rejected.labels(reason="source_limit").inc()
        fallback = state.fallback(app)
        if fallback is None:
            raise
        return await _fallback(request, fallback, spec, choice, refusal, tag=tag)


async def _variant(
    request: web.Request,
    target: LocalTarget | RemoteTarget,
    spec: RequestSpec,
    choice: FormatChoice,
    tag: str,
) -> web.StreamResponse:
    app = request.app
    settings = state.settings(app)
    renders = state.renders(app)
    sources = state.origins(app).sources
    timings = Timings() if settings.server_timing else None
    began = time.perf_counter()
    resolve, facts = await original_of(request, target)
    if timings is not None and isinstance(target, RemoteTarget):
        timings.add("origin", time.perf_counter() - began)
    # One trip off the event loop: resolve the original, key it, and open a
    # cached render if there is one (the common case is a hit).
    began = time.perf_counter()
    located = await renders.to_thread(
        partial(
            state.locator(app).locate, facts=facts, request_id=request.get(state.REQUEST_ID, "")
        ),
        resolve,
        spec,
        choice,
        request.headers.get("If-None-Match"),
    )
    headers = _image_headers(settings, spec, located.key.etag, cache_control(settings), tag)
    if settings.widths:
        headers["Content-Location"] = canonical_url(
            request, located.canonical, settings.signing_keys
        )
    if isinstance(target, LocalTarget):
        memo = state.hit_memo(app)
        memo.remember(memo.identity(request), located.key.digest, located.key.etag, headers)
    if located.not_modified:
        return web.Response(status=304, headers=headers)
    if timings is not None:
        # The trip that looked the render up (the resolve and key included).
        desc = "miss" if located.cached is None else "hit"
        timings.add("cache", time.perf_counter() - began, desc=desc)
    original = located.original
    if located.cached is None and isinstance(target, RemoteTarget):
        assert sources is not None
        began = time.perf_counter()
        try:
            original = await sources.with_body(target.source, original)
        except OriginalChangedRemotely:
            raise OriginalReplaced("the original changed at its origin, try again") from None
        if timings is not None:
            timings.add("origin", time.perf_counter() - began)
    served = located.cached or await renders.cached_or_rendered(
        located.key.digest,
        original,
        _render_request(located.canonical),
        request_id=request.get(state.REQUEST_ID, ""),
        timings=timings,
        prepared=located.prepared,
    )
    if timings is not None:
        headers[TIMING_HEADER] = timings.header()
    return _served(request, served, headers)


def _remembered_answer(
    request: web.Request, remembered: Remembered, server_timing: bool
) -> web.StreamResponse | None:
    """The answer to a request remembered a moment ago (server/hit_memo.py),
    from the event loop: a 304, or its cached file; None when the file is
    no longer in this process's memo of the cache."""
    headers = remembered.headers.copy()
    if etag_matches(request.headers.get("If-None-Match"), remembered.etag):
        return web.Response(status=304, headers=headers)
    began = time.perf_counter()
    served = state.locator(request.app).open_remembered(remembered.digest)
    if served is None:
        return None
    if server_timing:
        timings = Timings()
        timings.add("cache", time.perf_counter() - began, desc="hit")
        headers[TIMING_HEADER] = timings.header()
    return _served(request, served, headers)


async def original_of(
    request: web.Request, target: LocalTarget | RemoteTarget
) -> tuple[Callable[[], Original], OutputFacts | None]:
    """How to resolve the original (a local one is stat()ed off the loop,
    as the first thing its locator does), and a remote one's header facts
    (from the source cache: a local one's are read with its header)."""
    if isinstance(target, LocalTarget):
        return partial(target.directory.resolve, target.path), None
    sources = state.origins(request.app).sources
    request[state.ORIGIN] = target.source.client.name
    assert sources is not None  # opened whenever an origin is remote
    remote = await sources.original(target.source)
    allow_svg = state.settings(request.app).enable_svg
    remote, facts = await sources.facts(
        target.source, remote, partial(output_facts_of, allow_svg=allow_svg)
    )
    return partial(_same, remote), facts


async def _fallback(
    request: web.Request,
    fallback: Fallback,
    spec: RequestSpec,
    choice: FormatChoice,
    refusal: NotFound | UnprocessableImage,
    *,
    tag: str,
) -> web.StreamResponse:
    """The fallback image at the request's size and format, with the real
    status (or --fallback-status); the refusal itself when even the
    fallback cannot be rendered so."""
    app = request.app
    renders = state.renders(app)
    plain = fallback_spec(spec)
    try:
        located = await renders.to_thread(
            partial(state.locator(app).locate, request_id=request.get(state.REQUEST_ID, "")),
            partial(_same, fallback.original),
            plain,
            choice,
            request.headers.get("If-None-Match"),
        )
        settings = state.settings(app)
        directives = cache_control(settings, fallback)
        headers = _image_headers(settings, spec, located.key.etag, directives, tag)
        headers["X-Fallback"] = "1"
        if located.not_modified:
            return web.Response(status=304, headers=headers)
        served = located.cached or await renders.cached_or_rendered(
            located.key.digest,
            fallback.original,
            _render_request(located.canonical),
            request_id=request.get(state.REQUEST_ID, ""),
            prepared=located.prepared,
        )
    except (NotFound, UnprocessableImage):
        raise refusal from None
    return _served(request, served, headers, status=fallback.status or refusal.status)


def _image_headers(
    settings: Settings, spec: RequestSpec, etag: str, cache_control: str, tag: str
) -> CIMultiDict[str]:
    """Every image answer's (304s and fallbacks included): ``Surrogate-Key``
    (Fastly and others) and ``Cache-Tag`` (Cloudflare) both carry the
    original's CDN tag, for a CDN purge by tag after our own."""
    headers = CIMultiDict[str]()
    headers["ETag"] = etag
    headers["Cache-Control"] = cache_control
    headers["Surrogate-Key"] = tag
    headers["Cache-Tag"] = tag
    varies = ["Accept"] if spec.auto_format else []
    if settings.client_hints:
        # Used or not: a response without hints must not be given to a
        # browser that sends them, nor the other way round.
        headers["Accept-CH"] = ACCEPT_CH
        varies.append(VARY)
    if varies:
        headers["Vary"] = ", ".join(varies)
    return headers


def cache_control(settings: Settings, fallback: Fallback | None = None) -> str:
    """``public, max-age`` and the CDN's stale directives (0 leaves one
    out). A fallback's short max-age bounds its stale-while-revalidate
    too, so the real image still shows up soon once it exists."""
    max_age = settings.max_age if fallback is None else fallback.max_age
    revalidate = settings.cdn_stale_while_revalidate
    if fallback is not None:
        revalidate = min(revalidate, max_age)
    directives = [f"public, max-age={max_age}"]
    if revalidate:
        directives.append(f"stale-while-revalidate={revalidate}")
    if settings.cdn_stale_if_error:
        directives.append(f"stale-if-error={settings.cdn_stale_if_error}")
    return ", ".join(directives)


def _served(
    request: web.Request, served: Served, headers: CIMultiDict[str], *, status: int = 200
) -> DescriptorResponse:
    headers["Content-Type"] = served.format.media_type
    headers["X-Cache"] = "HIT" if served.hit else "MISS"
    request[state.CACHE_STATUS] = headers["X-Cache"]
    if served.render_seconds is not None:
        request[state.RENDER_SECONDS] = served.render_seconds
    return DescriptorResponse(served.descriptor, served.size, headers, status=status)


def _same(original: Original) -> Original:
    return original


def url_and_parameters(request: web.Request) -> tuple[URL | None, list[tuple[str, str]]]:
    """A ``?url=`` source's URL (None for /picture/<path>), and the rest of
    the query for the spec."""
    parameters = list(request.query.items())
    if request.match_info.get("path") is not None:
        return None, parameters
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
    return url.with_fragment(None), [item for item in parameters if item[0] != "url"]


def target_of(request: web.Request, url: URL | None) -> LocalTarget | RemoteTarget:
    """Where the original is: an origin's path, or a ``?url=`` source."""
    origins = state.origins(request.app)
    if url is None:
        return origins.routes.target(request.match_info["path"])
    if origins.url_sources is None:
        raise NotFound("URL sources are off (--url-sources)")
    return RemoteTarget(Source(origins.url_sources, str(url)))


def _render_request(wanted: Canonical) -> RenderRequest:
    """The render of a canonical request: its format already resolved."""
    spec = wanted.spec
    return RenderRequest(
        width=spec.width,
        height=spec.height,
        format=wanted.format,
        background=spec.background,
        quality=spec.quality,
        fit=spec.fit,
        gravity=spec.gravity,
        crop=spec.crop,
        rotate=spec.rotate,
        flip=spec.flip,
        focal_point=None
        if spec.focal_point is None
        else (float(spec.focal_point[0]), float(spec.focal_point[1])),
        trim=spec.trim,
        blur=None if spec.blur is None else float(spec.blur),
        sharpen=None if spec.sharpen is None else float(spec.sharpen),
        overlay=None if spec.overlay is None else spec.overlay.name,
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
