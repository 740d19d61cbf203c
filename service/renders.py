"""Where renders run: a bounded thread pool, a bounded queue, coalescing.

A render never runs on the event loop. At most ``concurrency`` run at once,
at most ``queue`` more wait; beyond that a request is answered 503 at once.
Concurrent requests for one missing variant share one render.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from .cache import CachedFile, CacheUnavailable, DiskCache, TempFile
from .decode_budget import DecodeBudget
from .errors import OriginalReplaced, Overloaded, RenderTimeout, UnprocessableImage
from .formats import OutputFormat
from .header_memo import facts_of
from .metrics import Metrics
from .mezzanine import MezzanineStore
from .process.crashes import CrashLog, original_digest
from .process.render_tokens import TokenClient
from .render import (
    HeaderFacts,
    InfoRequest,
    MezzanineUnusable,
    OutputWriteError,
    RenderPolicy,
    RenderRequest,
    build_mezzanine,
    decode_reservation,
    mezzanine_size,
    render,
    worth_building,
    write_info,
)
from .solo import SoloLock
from .sources import Original, OriginalChanged, open_original
from .spill import Spill
from .timings import Timings

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# What a render slot runs: an image's render, or /info's document of an
# original. Both go through the same slots, queue, deadline, decode budget,
# crash log and cache.
Job = RenderRequest | InfoRequest
# The cache's label of an /info document (a render's is its format).
INFO_LABEL = "info"

# Renders that could not be cached are removed once their requests have
# opened them; one older than this was lost by its requests (cancelled) and
# is removed by housekeeping.
_UNCACHED_GRACE_SECONDS = 60.0
_ATTEMPTS = 3
# A test-only way to crash a worker on a chosen original (its path under
# the originals directory), as a crashing decoder would: SIGSEGV.
CRASH_ON_ENV = "IMAGE_FACTORY_TEST_CRASH_ON"
# How long past its deadline a request waits for a render to kill itself.
_KILL_GRACE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """A finished render on disk: in the cache, or in the uncached spill."""

    path: str
    format: OutputFormat | None  # None: an /info document
    cached: bool


@dataclass(frozen=True, slots=True)
class _Unpublished:
    """A finished render in a cache temporary, not committed yet."""

    temp: TempFile
    format: OutputFormat | None  # None: an /info document


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a render takes from before it is queued: the header's facts,
    and whether the original was in flight at a worker's crash."""

    facts: HeaderFacts
    digest: str  # the original's name in the crash log
    suspect: bool
    request_id: str  # of the request that asked for the render


class _Start:
    """When a render thread began a job: written once by that thread, read
    by the loop after, so that the loop is not woken to be told."""

    __slots__ = ("at", "submitted")

    def __init__(self) -> None:
        self.submitted = time.perf_counter()  # reset when the job is queued
        self.at: float | None = None

    def mark(self) -> None:
        self.at = time.perf_counter()


@dataclass(frozen=True, slots=True)
class Computed:
    """An /info document, and how it was obtained."""

    body: bytes
    hit: bool
    render_seconds: float | None = None


@dataclass(slots=True)
class Served:
    """An open file ready to be sent, and how it was obtained."""

    descriptor: int
    size: int
    format: OutputFormat
    hit: bool
    render_seconds: float | None = None


class RenderService:
    """Owns the render pool, the in-flight table and the cache handle."""

    def __init__(
        self,
        cache: DiskCache,
        metrics: Metrics,
        policy: RenderPolicy,
        *,
        concurrency: int,
        queue: int,
        crash_log: CrashLog,
        tokens: TokenClient | None = None,
        decode_budget: int | None = None,
        mezzanines: MezzanineStore | None = None,
    ) -> None:
        self.cache = cache
        self.mezzanines = mezzanines  # None: --mezzanine off
        self._crash_log = crash_log
        self._solo = SoloLock()
        self._crash_on = os.environ.get(CRASH_ON_ENV)
        self.policy = policy
        self._tokens = tokens
        self.metrics = metrics
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="render")
        self._budget = (
            None
            if decode_budget is None
            else DecodeBudget(decode_budget, on_wait=metrics.decode_budget_waits.inc)
        )
        self._in_flight: dict[str, asyncio.Future[RenderedFile]] = {}
        self._admitted = 0  # renders running or waiting for a thread
        self.waiting = 0  # requests waiting on another request's render
        self._spill = Spill(cache.directory)
        # Per key: the requests between asking for a render and opening it,
        # and the uncached renders they were given (removed with the last).
        self._spill_readers: dict[str, int] = {}
        self._spilled: dict[str, list[str]] = {}
        self._cache_failing = False  # in an outage that has been logged
        # A hook run in the render thread before each render. Tests hold
        # renders with it (an event they release) instead of sleeping.
        self.before_render: Callable[[], None] | None = None

    @property
    def admitted(self) -> int:
        """Renders running or queued for a thread (each holds a slot)."""
        return self._admitted

    async def to_thread(self, function: Callable[..., T], *args: object) -> T:
        """Run small blocking file work (stat, open, SQLite) off the loop."""
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def cached_or_rendered(
        self,
        key: str,
        original: Original,
        request: RenderRequest,
        *,
        request_id: str = "",
        timings: Timings | None = None,
        prepared: Prepared | None = None,
    ) -> Served:
        """The variant ``key`` as an open file: from the cache, or rendered
        (``request_id`` names the request in the crash log; ``timings``
        gets the render's waits and steps, service/timings.py).
        ``prepared``: the original's ``prepare``, from a caller that has
        just found no cached file in the same trip off the loop
        (server/locate.py), so that a miss goes straight to its render."""
        return await self._cached_or_made(
            key,
            original,
            request,
            request_id,
            cached=self.open_cached,
            # An open and fstat of a file just written: less than the trip
            # to a thread and back (the hit memo opens on the loop too).
            made=self._open_rendered,
            made_on_loop=True,
            timings=timings,
            prepared=prepared,
        )

    async def cached_or_computed(
        self, key: str, original: Original, request: InfoRequest, *, request_id: str = ""
    ) -> Computed:
        """The /info document ``key`` of ``original``: from the cache, or
        computed in a render slot as a render is (and cached like one)."""
        return await self._cached_or_made(
            key, original, request, request_id, cached=self._cached_document, made=_computed
        )

    async def _cached_or_made(
        self,
        key: str,
        original: Original,
        job: Job,
        request_id: str,
        *,
        cached: Callable[[str], R | None],
        made: Callable[[RenderedFile, float | None], R | None],
        made_on_loop: bool = False,
        timings: Timings | None = None,
        prepared: Prepared | None = None,
    ) -> R:
        """``cached(key)``, else the job run once (coalesced) and its file
        opened by ``made``. With ``prepared``, the caller has just looked
        the key up: the first attempt goes straight to the render."""
        for _ in range(_ATTEMPTS):
            if prepared is None:
                found = await self.to_thread(cached, key)
                if found is not None:
                    return found
            self.metrics.cache_misses.inc()
            async with self._reading(key) as spilled:
                rendered, render_seconds = await self._render_once(
                    key, original, job, request_id, timings=timings, prepared=prepared
                )
                if not rendered.cached:
                    spilled.append(rendered.path)
                if made_on_loop:
                    result = made(rendered, render_seconds)
                else:
                    result = await self.to_thread(made, rendered, render_seconds)
            if result is not None:
                return result
            prepared = None  # a second attempt looks the cache up again
            # Evicted by another process between the commit and our open
            # (only with a cache far smaller than its traffic): go again.
        raise Overloaded("the cache is too small for the current traffic, try again")

    def read_cached(self, key: str) -> bytes | None:
        """Blocking: the cached /info document of ``key`` (a small file, read
        whole), counted as a hit."""
        found = self._open_hit(key)
        if found is None:
            return None
        with os.fdopen(found[1], "rb") as handle:
            return handle.read()

    def _cached_document(self, key: str) -> Computed | None:
        body = self.read_cached(key)
        return None if body is None else Computed(body, hit=True)

    @contextlib.asynccontextmanager
    async def _reading(self, key: str) -> AsyncIterator[list[str]]:
        """Count a request for ``key`` from asking for a render until it has
        opened it; the last one out removes the key's uncached renders. A
        request is counted before it can be given a spill file and until it
        has the file open, so no spill is removed while a request may still
        open it, and none outlives its requests (the directory's bound
        counts them as renders in flight: service/cache.py)."""
        self._spill_readers[key] = self._spill_readers.get(key, 0) + 1
        try:
            yield self._spilled.setdefault(key, [])
        finally:
            self._spill_readers[key] -= 1
            if not self._spill_readers[key]:
                del self._spill_readers[key]
                paths = self._spilled.pop(key)
                if paths:
                    await self.to_thread(_remove_files, paths)

    async def _render_once(
        self,
        key: str,
        original: Original,
        request: Job,
        request_id: str,
        *,
        timings: Timings | None = None,
        prepared: Prepared | None = None,
    ) -> tuple[RenderedFile, float | None]:
        shared = self._in_flight.get(key)
        if shared is not None:
            return await self._shared_render(shared, timings), None
        if self._admitted >= self.capacity:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise Overloaded("the render queue is full, try again shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RenderedFile] = loop.create_future()
        self._in_flight[key] = future
        self._admitted += 1
        self.metrics.renders_in_flight.inc()
        start = _Start()
        reserved = 0
        try:
            # The header, read once per original: its facts size the decode
            # reservation and drive the render.
            if prepared is None:
                prepared = await self.to_thread(self.prepare, original, request_id)
            # Queue time, like waiting for a thread: not against the deadline.
            reserved = await self._reserve_decode_memory(prepared.facts, request, timings)
            start.submitted = time.perf_counter()
            job = loop.run_in_executor(
                self._executor,
                functools.partial(self._render_to_file, timings=timings),
                key,
                original,
                request,
                prepared,
                start.mark,
            )
        except BaseException as failure:  # refused by its header, cancelled, shutting down
            self._release_slot(reserved, None)
            self._fail(future, failure)
            del self._in_flight[key]
            raise
        # The slot (and the decode memory) is held until libvips returns,
        # even after a 504.
        job.add_done_callback(functools.partial(self._release_slot, reserved))
        # The render kills itself at its deadline; an encoder busy with a
        # frame may not stop at once, so the request does not wait longer.
        timeout = self.policy.timeout_seconds
        try:
            rendered = await self._wait_for_render(job, start, timeout + _KILL_GRACE_SECONDS)
        except TimeoutError:
            error = RenderTimeout(f"the render took longer than {timeout:g} s")
            self._fail(future, error)
            raise error from None
        except BaseException as error:
            self._fail(future, error)
            raise
        else:
            future.set_result(rendered)
        finally:
            del self._in_flight[key]
        ended = time.perf_counter()
        started = start.at if start.at is not None else ended
        elapsed = ended - started
        if timings is not None:
            timings.add("queue", started - start.submitted)
        self.metrics.renders.inc()
        self.metrics.render_duration.observe(elapsed)
        if timings is not None:
            timings.add("render", elapsed - timings.seconds("write"))
        return rendered, elapsed

    async def _shared_render(
        self, shared: asyncio.Future[RenderedFile], timings: Timings | None
    ) -> RenderedFile:
        """Wait for the identical render another request began."""
        self.waiting += 1
        began = time.perf_counter()
        try:
            return await asyncio.shield(shared)
        finally:
            self.waiting -= 1
            if timings is not None:
                timings.add("render", time.perf_counter() - began, desc="shared")

    @staticmethod
    async def _wait_for_render(
        job: asyncio.Future[RenderedFile], start: _Start, limit: float
    ) -> RenderedFile:
        """The job's result, waiting at most ``limit`` seconds from when a
        thread began it: time queued for a thread or a token does not count
        (TimeoutError past the limit)."""
        wait = limit
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(job), wait)
            except TimeoutError:
                if start.at is not None:
                    wait = start.at + limit - time.perf_counter()
                    if wait <= 0:
                        raise
                # Still queued: wait the whole limit again.

    def _fail(self, future: asyncio.Future[RenderedFile], error: BaseException) -> None:
        if isinstance(error, RenderTimeout):
            self.metrics.rejected.labels(reason="render_timeout").inc()
        future.set_exception(error)
        future.exception()  # mark retrieved: there may be no waiters

    def prepare(self, original: Original, request_id: str) -> Prepared:
        """Blocking: refuse an original that crashed the renderer twice, and
        read its header facts (once per original; recorded as in flight
        too, since a header's parser can crash as well)."""
        digest = original_digest(original.identity)
        crashes = self._crash_log.crashes(digest)
        if crashes >= 2:
            self.metrics.rejected.labels(reason="poisoned").inc()
            log.warning(
                "refused %s: it crashed the renderer twice (request %s)",
                original.relative,
                request_id,
            )
            raise UnprocessableImage(
                "the original crashed the renderer twice; refused for "
                f"{self._crash_log.ttl_seconds:g} s after the last crash"
            )
        try:
            with self._crash_log.rendering(digest, original.relative, request_id):
                facts = facts_of(original, allow_svg=self.policy.allow_svg)
        except OriginalChanged:
            raise OriginalReplaced("the original changed during the request, try again") from None
        return Prepared(facts, digest, suspect=crashes == 1, request_id=request_id)

    async def _reserve_decode_memory(
        self, facts: HeaderFacts, request: Job, timings: Timings | None = None
    ) -> int:
        """Reserve what the render holds for the whole image (the
        original's decoder, and a trim's decoded image: ``decode_budget``),
        waiting for room; the bytes reserved."""
        if self._budget is None:
            return 0
        need = decode_reservation(
            facts, self.policy, request if isinstance(request, RenderRequest) else None
        )
        began = time.perf_counter()
        await self._budget.acquire(need)
        if timings is not None:
            timings.add("budget", time.perf_counter() - began)
        self.metrics.decode_budget_reserved.set(self._budget.reserved)
        return need

    def _release_slot(self, reserved: int, job: asyncio.Future[RenderedFile] | None) -> None:
        self._admitted -= 1
        self.metrics.renders_in_flight.dec()
        if self._budget is not None:
            self._budget.release(reserved)
            self.metrics.decode_budget_reserved.set(self._budget.reserved)
        if job is not None and not job.cancelled():
            job.exception()  # retrieved here: after a 504 nobody else looks

    def _render_to_file(
        self,
        key: str,
        original: Original,
        request: Job,
        prepared: Prepared,
        note_start: Callable[[], object],
        *,
        timings: Timings | None = None,
    ) -> RenderedFile:
        """In a pool thread: render into a temporary file, then publish it.
        With several workers, first wait for one of the machine-wide render
        tokens (queue time: the deadline starts after it). The token is for
        the CPU work only: it goes back before the cache commit, whose SQLite
        write lock another worker may hold for a while. A suspect of a crash
        then waits until it can render alone in this worker (queue time too);
        while it renders, the crash log says this worker renders it."""
        with (
            contextlib.nullcontext() if self._tokens is None else self._tokens.held(),
            self._solo.alone() if prepared.suspect else self._solo.shared(),
        ):
            note_start()
            if self.before_render is not None:
                self.before_render()
            try:
                source = open_original(original)
            except OriginalChanged:
                raise OriginalReplaced(
                    "the original changed during the request, try again"
                ) from None
            try:
                with self._crash_log.rendering(
                    prepared.digest, original.relative, prepared.request_id
                ):
                    if original.relative == self._crash_on:
                        os.kill(os.getpid(), signal.SIGSEGV)
                    started = time.monotonic()
                    mezzanine = self._mezzanine_for(key, original, request, prepared.facts, source)
                    policy = self.policy
                    if mezzanine is not None:
                        # A build in this slot spent some of the render's time.
                        spent = time.monotonic() - started
                        if spent >= policy.timeout_seconds:
                            raise RenderTimeout(
                                f"the render took longer than {policy.timeout_seconds:g} s"
                            )
                        policy = replace(policy, timeout_seconds=policy.timeout_seconds - spent)
                    rendered = self._render_from(
                        source,
                        request,
                        prepared.facts,
                        policy=policy,
                        mezzanine=mezzanine,
                        original=original,
                    )
            finally:
                os.close(source)
        if isinstance(rendered, RenderedFile):
            return rendered  # uncached: nothing to publish
        began = time.perf_counter()
        published = self._publish(key, rendered, original)
        if timings is not None:
            timings.add("write", time.perf_counter() - began)
        return published

    def _mezzanine_for(
        self, key: str, original: Original, request: Job, facts: HeaderFacts, source: int
    ) -> str | None:
        """In the render thread: the path of the original's mezzanine
        (service/mezzanine.py) for this render to read, built now when this
        is the original's second distinct variant; None to read the
        original. A build is coalesced per original in this process."""
        store = self.mezzanines
        if store is None or not isinstance(request, RenderRequest) or request.trim is not None:
            return None
        if not worth_building(facts):
            return None
        found = store.find(original.identity)
        if found is not None:
            return found.path
        if _larger_than_mezzanine(request, facts) or not store.wants(original.identity, key):
            return None
        with store.building(original.identity):
            found = store.find(original.identity)  # built by another thread meanwhile
            if found is not None:
                return found.path
            return self._build_mezzanine(store, original, facts, source)

    def _build_mezzanine(
        self, store: MezzanineStore, original: Original, facts: HeaderFacts, source: int
    ) -> str | None:
        try:
            temp = store.new_temp()
        except CacheUnavailable:
            return None
        try:
            built = build_mezzanine(facts, source, temp.path, self.policy.timeout_seconds)
            os.lseek(source, 0, os.SEEK_SET)  # the render reads the original anew
            if not built:
                temp.discard()
                return None
            entry = store.commit(original.identity, temp, original.purge_name)
        except CacheUnavailable:
            temp.discard()
            return None
        except BaseException:
            temp.discard()
            raise
        self.metrics.mezzanine_builds.inc()
        return entry.path

    def _render_from(
        self,
        source: int,
        request: Job,
        facts: HeaderFacts,
        *,
        policy: RenderPolicy,
        mezzanine: str | None,
        original: Original,
    ) -> _Unpublished | RenderedFile:
        """Render into a cache temporary, or uncached when the cache fails;
        from ``mezzanine`` where it helps, and from the original again if
        libvips fails on it (the mezzanine is then removed)."""
        try:
            temp = self.cache.new_temp()
        except CacheUnavailable as error:
            self.note_cache_failure(error)
            return self._render_uncached(source, request, facts, error)
        try:
            try:
                output_format = self._write(
                    request, facts, source, temp.descriptor, policy=policy, mezzanine=mezzanine
                )
            except MezzanineUnusable:
                log.warning("mezzanine of %s unusable: removed", original.relative)
                if self.mezzanines is not None:
                    self.mezzanines.forget(original.identity)
                os.lseek(source, 0, os.SEEK_SET)
                os.ftruncate(temp.descriptor, 0)
                os.lseek(temp.descriptor, 0, os.SEEK_SET)
                output_format = self._write(request, facts, source, temp.descriptor, policy=policy)
        except OutputWriteError as error:
            # The cache's disk failed mid-write (full, gone): go again, uncached.
            temp.discard()
            self.note_cache_failure(CacheUnavailable(str(error)))
            os.lseek(source, 0, os.SEEK_SET)
            return self._render_uncached(source, request, facts, error)
        except BaseException:
            temp.discard()
            raise
        return _Unpublished(temp, output_format)

    def _publish(self, key: str, rendered: _Unpublished, original: Original) -> RenderedFile:
        """Move a finished render into the cache, under its original's purge
        name (service/purge.py), or spill it when the cache fails."""
        temp, output_format = rendered.temp, rendered.format
        try:
            entry = self.cache.commit(
                key, temp, output_format or INFO_LABEL, original=original.purge_name or None
            )
        except CacheUnavailable as error:
            self.note_cache_failure(error)
        except BaseException:
            temp.discard()
            raise
        else:
            if self._cache_failing:
                self._cache_failing = False
                log.warning("cache usable again")
            return RenderedFile(entry.path, output_format, cached=True)
        try:
            spilled = self._spill.take(temp.path, temp.descriptor)
        finally:
            temp.discard()
        return RenderedFile(spilled, output_format, cached=False)

    def _render_uncached(
        self, source: int, request: Job, facts: HeaderFacts, cause: Exception
    ) -> RenderedFile:
        # Only after the cache volume failed to give or take a temporary
        # (``cause``: full, unwritable), so to $TMPDIR, not to that volume.
        descriptor, path = self._spill.new_file_off_volume(cause)
        temp = TempFile(path, descriptor)
        try:
            output_format = self._write(request, facts, source, temp.descriptor)
        except OutputWriteError as error:
            temp.discard()
            raise Overloaded("no space left to render, try again later") from error
        except BaseException:
            temp.discard()
            raise
        temp.close()
        return RenderedFile(temp.path, output_format, cached=False)

    def _write(
        self,
        job: Job,
        facts: HeaderFacts,
        source: int,
        target: int,
        *,
        policy: RenderPolicy | None = None,
        mezzanine: str | None = None,
    ) -> OutputFormat | None:
        """Run ``job`` from ``source`` (or its ``mezzanine``) into
        ``target``: the image's format, or None for an /info document."""
        if isinstance(job, InfoRequest):
            write_info(self.policy, job, facts, source, target)
            return None
        result = render(policy or self.policy, job, facts, source, target, mezzanine=mezzanine)
        if result.from_mezzanine:
            self.metrics.mezzanine_hits.inc()
        return result.format

    def note_cache_failure(self, error: CacheUnavailable) -> None:
        """Count every failure; log the first of an outage (a full disk
        fails every request until it is freed: one line each would flood
        the log), and its end, on the next commit that succeeds."""
        self.metrics.cache_errors.inc()
        if not self._cache_failing:
            self._cache_failing = True
            log.warning("cache unavailable, serving uncached until it recovers: %s", error)

    def open_cached(self, key: str) -> Served | None:
        """Blocking: the cached render of ``key``, open, counted as a hit."""
        found = self._open_hit(key)
        if found is None:
            return None
        entry, descriptor = found
        return Served(descriptor, entry.size, entry.format, hit=True)

    def _open_hit(self, key: str) -> tuple[CachedFile, int] | None:
        """Blocking: the entry of ``key``, open, counted as a hit; None on
        a miss, or when the cache cannot be read now (counted and logged)."""
        try:
            found = self.cache.open_entry(key)
        except CacheUnavailable as error:
            self.note_cache_failure(error)
            return None
        if found is not None:
            self.metrics.cache_hits.inc()
        return found

    @staticmethod
    def _open_rendered(rendered: RenderedFile, render_seconds: float | None) -> Served | None:
        """The finished render, open; None if it was evicted meanwhile."""
        assert rendered.format is not None  # an image: /info reads its own
        try:
            descriptor = os.open(rendered.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        size = os.fstat(descriptor).st_size
        return Served(descriptor, size, rendered.format, hit=False, render_seconds=render_seconds)

    def sweep_spill(self) -> None:
        """Remove uncached renders that their requests lost."""
        self._spill.sweep(time.time() - _UNCACHED_GRACE_SECONDS)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._spill.close()
        self._crash_log.close()


def _larger_than_mezzanine(request: RenderRequest, facts: HeaderFacts) -> bool:
    """A request whose asked size alone exceeds the mezzanine (a 3000-px
    width of a 6000-px original): it would never read one, so it does not
    make one."""
    width, height = mezzanine_size(facts)
    if request.rotate % 180:
        width, height = height, width
    too_wide = request.width is not None and request.width > width
    too_tall = request.height is not None and request.height > height
    return too_wide or too_tall


def _computed(rendered: RenderedFile, render_seconds: float | None) -> Computed | None:
    """A finished /info document, read; None if it was evicted meanwhile."""
    try:
        with open(rendered.path, "rb") as handle:
            return Computed(handle.read(), hit=False, render_seconds=render_seconds)
    except FileNotFoundError:
        return None


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
