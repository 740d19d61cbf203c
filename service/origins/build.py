"""Opening the origins a process reads from, from its settings.

Called by the composition root (server/app.py) inside the application's
cleanup context: the HTTP sessions and S3 clients live as long as the app.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ..cache import CacheUnavailable, DiskCache
from ..metrics import Metrics
from ..settings import Settings
from ..sources import OriginalsDirectory
from .config import DEFAULT_ORIGIN, DirectorySpec, HeaderValues, HttpSpec, OriginSpec
from .http import FetchPolicy, HttpFetcher, HttpOrigin, UrlSources
from .routes import Origin, Routes
from .slots import HostSlots
from .source_cache import Freshness, RunBlocking, SourceCache, adopt_source_entry


@dataclass(frozen=True, slots=True)
class OpenOrigins:
    routes: Routes
    sources: SourceCache | None  # None: every origin is a local directory
    url_sources: UrlSources | None  # None: ?url= is off


@contextlib.asynccontextmanager
async def open_origins(
    settings: Settings,
    metrics: Metrics,
    run_blocking: RunBlocking,
    purge_generation: Callable[[], int] = lambda: 0,
) -> AsyncIterator[OpenOrigins]:
    """The origins of ``settings``; ``purge_generation`` tells the source
    cache when a purge has made its memos stale (purge_stamp.py)."""
    async with contextlib.AsyncExitStack() as stack:
        fetcher: HttpFetcher | None = None
        slots = HostSlots(
            settings.origin_concurrency,
            settings.queue,
            in_flight=settings.queue + settings.concurrency,
            on_waiting=metrics.origin_waiting.set,
        )

        def http_fetcher() -> HttpFetcher:
            nonlocal fetcher
            if fetcher is None:
                fetcher = HttpFetcher(
                    FetchPolicy(
                        url_sources=settings.url_sources,
                        allowed_networks=settings.url_sources_allow_networks,
                        max_redirects=settings.origin_max_redirects,
                        connect_timeout=settings.origin_connect_timeout,
                        total_timeout=settings.origin_timeout,
                    ),
                    slots=slots,
                    on_refusal=metrics.ssrf_refusals.inc,
                )
                stack.push_async_callback(fetcher.close)
            return fetcher

        async def opened(name: str, spec: OriginSpec) -> Origin:
            if isinstance(spec, DirectorySpec):
                return OriginalsDirectory(
                    spec.root,
                    max_source_bytes=settings.max_source_bytes,
                    name="" if name == DEFAULT_ORIGIN else name,
                )
            if isinstance(spec, HttpSpec):
                headers = [h for h in settings.origin_headers if h.origin == name]
                return HttpOrigin(name, spec.prefix, http_fetcher(), HeaderValues(headers))
            from .s3 import S3Location, S3Settings, open_s3_origin  # noqa: PLC0415 - heavy

            s3 = await open_s3_origin(
                name,
                S3Location.parse(spec.text),
                S3Settings(
                    endpoint_url=settings.s3_endpoint_url,
                    region=settings.s3_region,
                    addressing_style=settings.s3_addressing,
                    connect_timeout=settings.origin_connect_timeout,
                    total_timeout=settings.origin_timeout,
                ),
                slots,
            )
            stack.push_async_callback(s3.close)
            return s3

        default_spec = settings.originals_spec
        default = None if default_spec is None else await opened(DEFAULT_ORIGIN, default_spec)
        named = {name: await opened(name, spec) for name, spec in settings.origins}
        routes = Routes(default, named)
        url_sources = UrlSources(http_fetcher()) if settings.url_sources is not None else None
        sources = None
        if routes.remote or url_sources is not None:
            cache = DiskCache(
                settings.sources_directory,
                settings.source_cache_max_bytes,
                adopt=adopt_source_entry,
                on_reopen=metrics.cache_errors.inc,
            )
            with contextlib.suppress(CacheUnavailable):  # as the result cache: retried on use
                await run_blocking(cache.open)
            stack.push_async_callback(run_blocking, cache.close)
            sources = SourceCache(
                cache,
                metrics,
                Freshness(
                    ttl=settings.source_ttl,
                    stale_if_error=settings.source_stale_if_error,
                    negative_ttl=settings.source_negative_ttl,
                ),
                max_source_bytes=settings.max_source_bytes,
                allow_svg=settings.enable_svg,
                run_blocking=run_blocking,
                download_seconds=settings.origin_timeout,
                purge_generation=purge_generation,
            )
        if sources is not None:
            stack.push_async_callback(sources.close)  # before the cache closes
        yield OpenOrigins(routes, sources, url_sources)
