"""The composition root: builds the aiohttp application from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from .. import __version__, header_memo
from ..cache import CacheStats, CacheUnavailable, DiskCache
from ..ladder import Ladder
from ..metrics import Metrics
from ..mezzanine import MezzanineStore, adopt_mezzanine
from ..origins.build import open_origins
from ..process.crashes import CrashLog
from ..process.render_tokens import TokenClient
from ..purge_stamp import PurgeStamp
from ..render import (
    FAST_DEPTH,
    PIPELINE_VERSION,
    SERVICE_DEPTH,
    OverlayLibrary,
    RenderPolicy,
    configure_libvips,
    libvips_version,
)
from ..renders import RenderService
from ..settings import Settings
from . import state
from .admin import no_such_endpoint, purge_handler
from .fallback import open_fallback
from .handlers import healthz, metrics_handler, picture
from .hit_memo import HitMemo
from .info import info
from .locate import Locator
from .middleware import count_requests, json_errors, request_ids
from .patches.protocol_errors import install as answer_protocol_errors_in_json
from .srcset import srcset
from .state import Lifecycle

log = logging.getLogger(__name__)

_HOUSEKEEPING_SECONDS = 1.0


def output_settings(settings: Settings) -> str:
    """Everything besides the request that shapes an output: a change to any
    of these must never serve an old render."""
    quality = ",".join(f"{fmt.value}={q}" for fmt, q in sorted(settings.quality.items(), key=str))
    return (
        f"image-factory {__version__} r{PIPELINE_VERSION}; libvips {libvips_version()}; "
        f"max-output {settings.max_output_size}; max-frames {settings.max_frames}; "
        f"avif-effort {settings.avif_effort}; q {quality}; svg {settings.enable_svg}"
        f"; keep-copyright {settings.keep_copyright}"
        # Only when on, so that turning it off keeps the cache's keys.
        + ("; fast-shrink-on-load" if settings.fast_shrink_on_load else "")
    )


def render_policy(settings: Settings) -> RenderPolicy:
    """What every render of this process is held to."""
    return RenderPolicy(
        quality=dict(settings.quality),
        auto_quality_target=settings.auto_quality_target,
        max_output_size=settings.max_output_size,
        max_source_pixels=settings.max_source_pixels,
        avif_effort=settings.avif_effort,
        max_frames=settings.max_frames,
        timeout_seconds=settings.render_timeout,
        allow_svg=settings.enable_svg,
        max_decode_bytes=settings.max_decode_bytes,
        keep_copyright=settings.keep_copyright,
        jpeg_shrink_depth=FAST_DEPTH if settings.fast_shrink_on_load else SERVICE_DEPTH,
        overlays=OverlayLibrary(settings.overlays) if settings.overlays else None,
    )


def create_app(settings: Settings, tokens: TokenClient | None = None) -> web.Application:
    """The application; ``tokens`` are the supervisor's shared render slots
    when this process is one of several ``--workers``."""
    configure_libvips(enable_svg=settings.enable_svg, mezzanine=settings.mezzanine)
    answer_protocol_errors_in_json()
    metrics = Metrics()
    app = web.Application(middlewares=[request_ids, count_requests(metrics), json_errors])
    app[state.SETTINGS] = settings
    app[state.POLICY] = render_policy(settings)
    app[state.METRICS] = metrics
    app[state.LIFECYCLE] = Lifecycle()
    app.on_shutdown.append(_begin_draining)
    app[state.OUTPUT_SETTINGS] = output_settings(settings)
    app[state.FALLBACK] = open_fallback(settings)
    app[state.OVERLAY_FINGERPRINTS] = settings.overlay_fingerprints
    app.cleanup_ctx.append(partial(_render_service, tokens=tokens))
    app.router.add_get("/picture/{path:.+}", picture)
    app.router.add_get("/picture", picture)  # ?url= sources
    app.router.add_get("/info/{path:.+}", info)
    app.router.add_get("/info", info)  # ?url= sources
    app.router.add_get("/srcset/{path:.+}", srcset)
    app.router.add_get("/srcset", srcset)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    if settings.admin_token is None:
        app.router.add_route("*", "/admin/purge", no_such_endpoint)
    else:
        app.router.add_post("/admin/purge", purge_handler)
    return app


async def _begin_draining(app: web.Application) -> None:
    """Runs once the listening sockets are closed, before in-flight requests
    are awaited (on SIGINT, or after the drain of a SIGTERM)."""
    lifecycle = state.lifecycle(app)
    lifecycle.draining = True
    lifecycle.stopping = True  # a drain's timer, still pending, must not stop again
    log.info("shutting down: finishing in-flight requests")


async def _render_service(
    app: web.Application, *, tokens: TokenClient | None
) -> AsyncIterator[None]:
    settings = state.settings(app)
    metrics = state.metrics(app)
    stack = contextlib.AsyncExitStack()
    cache = DiskCache(
        settings.cache_dir,
        settings.cache_max_bytes,
        on_evict=metrics.cache_evictions.inc,
        on_reopen=metrics.cache_errors.inc,
    )
    mezzanines = (
        MezzanineStore(
            DiskCache(
                settings.mezzanine_directory,
                settings.mezzanine_max_bytes,
                on_reopen=metrics.cache_errors.inc,
                adopt=adopt_mezzanine,
            )
        )
        if settings.mezzanine
        else None
    )
    # One worker is the whole service: the total bounds its own renders,
    # and a token's trip through the supervisor (two wake-ups of the
    # supervisor, one of the token reader, per render) would bound nothing.
    shared = tokens if settings.workers > 1 else None
    renders = RenderService(
        cache,
        metrics,
        state.policy(app),
        concurrency=settings.concurrency
        if shared
        else min(settings.concurrency, settings.total_concurrency),
        queue=settings.queue,
        tokens=shared,
        decode_budget=settings.decode_budget,
        crash_log=CrashLog(settings.cache_dir, settings.poison_ttl),
        mezzanines=mezzanines,
    )
    app[state.RENDERS] = renders
    try:
        await renders.to_thread(cache.open)
    except CacheUnavailable as error:
        # Serve uncached rather than not at all (a full cache volume is
        # exactly when a restart happens); the cache reconnects on use.
        renders.note_cache_failure(error)
    if mezzanines is not None:
        try:
            await renders.to_thread(mezzanines.cache.open)
        except CacheUnavailable as error:
            # Renders read their originals until it can be used.
            log.warning("mezzanine store unavailable: %s", error)
    stamp = await renders.to_thread(PurgeStamp, settings.cache_dir)
    app[state.PURGE_STAMP] = stamp
    app[state.HIT_MEMO] = HitMemo(stamp.generation, client_hints=settings.client_hints)
    origins = await stack.enter_async_context(
        open_origins(settings, metrics, renders.to_thread, stamp.generation)
    )
    app[state.ORIGINS] = origins
    app[state.LOCATOR] = Locator(
        renders,
        state.output_settings(app),
        settings.quality,
        settings.enable_svg,
        settings.max_output_size,
        Ladder(settings.widths) if settings.widths else None,
        weak_etags=settings.mezzanine,
        auto_quality_target=settings.auto_quality_target,
    )
    metrics.watch_cache(partial(_cache_stats, cache))
    source_cache = origins.sources.cache if origins.sources else None
    mezzanine_cache = mezzanines.cache if mezzanines else None
    housekeeping = asyncio.create_task(_housekeeping(renders, source_cache, mezzanine_cache, stamp))
    yield
    housekeeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await housekeeping
    await stack.aclose()
    await asyncio.get_running_loop().run_in_executor(None, renders.close)
    await asyncio.get_running_loop().run_in_executor(None, cache.close)
    if mezzanine_cache is not None:
        await asyncio.get_running_loop().run_in_executor(None, mezzanine_cache.close)
    stamp.close()


async def _housekeeping(
    renders: RenderService,
    sources: DiskCache | None,
    mezzanines: DiskCache | None,
    stamp: PurgeStamp,
) -> None:
    """Batch-write cache recency and sweep uncached renders, once a second;
    after a purge by any process, drop the memos it left stale here."""
    seen = stamp.generation()
    while True:
        await asyncio.sleep(_HOUSEKEEPING_SECONDS)
        try:
            await renders.to_thread(renders.cache.flush)
            for store in (sources, mezzanines):
                if store is not None:
                    await renders.to_thread(store.flush)
            await renders.to_thread(renders.sweep_spill)
            await renders.to_thread(stamp.refresh)
            if stamp.generation() != seen:
                seen = stamp.generation()
                _drop_memos(renders.cache, sources, mezzanines)
        except Exception:
            # One bad round must not end housekeeping for the process's life.
            log.exception("housekeeping failed; retrying in a second")


def _drop_memos(
    results: DiskCache, sources: DiskCache | None, mezzanines: DiskCache | None
) -> None:
    """After a purge: the entries this process remembers (each would only
    fail its open, one by one), and the header facts (keyed by identity, so
    never wrong, but the purged originals' are no longer wanted). The
    source cache drops its own at its next consult (origins/source_cache.py)."""
    results.drop_memo()
    for store in (sources, mezzanines):
        if store is not None:
            store.drop_memo()
    header_memo.forget_all()


def _cache_stats(cache: DiskCache) -> CacheStats | None:
    try:
        return cache.stats()
    except CacheUnavailable:
        return None
