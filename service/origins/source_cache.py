"""Downloaded originals: a bounded on-disk LRU, freshness, coalescing.

Layout: a ``DiskCache`` of its own (so the result cache's guarantees: atomic
commits, crash safety, one bound over the whole directory, shared by
``--workers``) holding two kinds of entry:

    b<sha256 of source and identity>  an original's body, immutable
    r<sha256 of source>               its freshness record (JSON): the
                                      identity, validators, size, and
                                      when the origin last confirmed it

Freshness. A record younger than ``ttl`` is trusted outright: the request
is keyed from it with no origin request (a result-cache hit then costs no
network at all, and needs no body). An older one is revalidated with a
conditional request: unchanged refreshes the record and keeps every variant,
changed makes a new identity and so new variants. When revalidation fails
(origin down, 5xx, timeout), a record younger than ``ttl + stale_if_error``
is served as it stands, and counted.

Coalescing. Within a process, one task per source; across processes, a
``flock`` on one of 4,096 lock stripes (``locks/``), so concurrent requests
for an original make one origin request over all workers: a worker that
finds the stripe taken waits for it, then finds the record its neighbour
wrote. A 404 or 410 is remembered in memory for ``negative_ttl``.

A cache directory that cannot be used (a full disk) is a 503, like a full
render queue: the request may succeed once room is made.

Purges. Records and bodies are committed under the original's purge name,
so a purge removes them with its variants (service/purge.py). The memos of
records and of 404s are this process's own: each consult first reads the
purge generation (one ``pread`` of the stamp, service/purge_stamp.py) and
drops both memos when any process has purged since, so no worker goes on
trusting a purged original's identity for the rest of its TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..cache import CacheUnavailable, DiskCache
from ..canonical import OutputFacts
from ..errors import BadGateway, NotFound, OriginTimeout, Overloaded, ServiceError
from ..metrics import Metrics
from ..sources import Original
from .body import BodySink, TruncatedBody
from .config import DEFAULT_ORIGIN, URL_SOURCES
from .fetched import Fetched, OriginClient, Validators

log = logging.getLogger(__name__)

T = TypeVar("T")
# Lock stripes (empty files, ``locks/<3 hex digits>``): two originals share
# one with odds of 1 in 4,096, and then one waits for the other's download.
_STRIPE_DIGITS = 3
# How often a worker looks again at a stripe another worker holds: a
# download takes tens of milliseconds at least, so this adds little.
_LOCK_POLL_SECONDS = 0.02
# The memos of records and of 404s are bounded by the bytes of their keys
# (a URL source's name may be 8 KB long), not only by their count.
_MEMO_BYTES = 16 * 2**20
_ENTRY_OVERHEAD = 400  # a record's fields and the dict's own, roughly
_RECORD = "record"
_BODY = "source"
_FACTS = "facts"


class RunBlocking(Protocol):
    """Runs blocking file work off the event loop (RenderService.to_thread)."""

    def __call__(self, function: Callable[..., T], *args: object) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class Source:
    """One remote original: its origin's client and its key there."""

    client: OriginClient
    key: str

    @property
    def name(self) -> str:
        """Names it in the source cache, the crash log and the access log."""
        return f"{self.client.name}:{self.key}"

    @property
    def purge_name(self) -> str:
        """Names it for a purge, as the URL does (``Original.purge_name``):
        the key for --originals and for a ?url= source (its URL), and
        ``NAME/key`` for the origin NAME."""
        if self.client.name in (DEFAULT_ORIGIN, URL_SOURCES):
            return self.key
        return f"{self.client.name}/{self.key}"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    identity: str
    validators: Validators
    size: int
    checked: float  # when the origin last confirmed it (time.time())

    @property
    def conditional(self) -> bool:
        """Whether the origin gave validators to revalidate with."""
        return bool(self.validators.etag or self.validators.last_modified)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "identity": self.identity,
                "etag": self.validators.etag,
                "last_modified": self.validators.last_modified,
                "size": self.size,
                "checked": self.checked,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SourceRecord | None:
        try:
            fields: dict[str, Any] = json.loads(data)
            return cls(
                identity=str(fields["identity"]),
                validators=Validators(fields.get("etag"), fields.get("last_modified")),
                size=int(fields["size"]),
                checked=float(fields["checked"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # a torn or foreign file: fetched again


def adopt_source_entry(key: str, path: str) -> str | None:
    """The label of a file found without a record after a crash."""
    if key.startswith("r"):
        return _RECORD
    if key.startswith("b"):
        return _BODY
    if key.startswith("f"):
        return _FACTS
    return None


@dataclass(frozen=True, slots=True)
class Freshness:
    ttl: float = 60.0
    stale_if_error: float = 86400.0
    negative_ttl: float = 10.0


class SourceCache:
    """One per process, over the directory every worker shares."""

    def __init__(
        self,
        cache: DiskCache,
        metrics: Metrics,
        freshness: Freshness,
        *,
        max_source_bytes: int,
        allow_svg: bool,
        run_blocking: RunBlocking,
        download_seconds: float,
        clock: Callable[[], float] = time.time,
        purge_generation: Callable[[], int] = lambda: 0,
    ) -> None:
        self.cache = cache
        self._metrics = metrics
        self._freshness = freshness
        self._max_source_bytes = max_source_bytes
        self._allow_svg = allow_svg
        self._run_blocking = run_blocking
        # How long a worker waits for another's download of a stripe: the
        # download's own bound, and a margin for committing it.
        self._stripe_wait = download_seconds + 5.0
        self._clock = clock
        # name: (record, trusted until, whether it stands for a failed revalidation)
        self._records: _Memo[tuple[SourceRecord, float, bool]] = _Memo(_MEMO_BYTES)
        self._missing: _Memo[float] = _Memo(_MEMO_BYTES)  # name: remembered until
        self._pending: dict[str, asyncio.Task[SourceRecord]] = {}
        # identity: its header's facts, for keys (noted on disk too: _facts_key)
        self._facts: _Memo[OutputFacts] = _Memo(_MEMO_BYTES)
        self._purge_generation = purge_generation
        self._seen_generation = purge_generation()
        self._locks = os.path.join(cache.directory, "locks")

    async def close(self) -> None:
        """Cancel the downloads still running (at shutdown, after the
        requests waiting for them are done or cut by the grace)."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _blocking(self, function: Callable[[], T]) -> T:
        try:
            return await self._run_blocking(function)
        except CacheUnavailable as error:
            raise Overloaded(f"the source cache cannot be used now: {error}") from None

    # -- what a request asks -------------------------------------------

    async def original(self, source: Source) -> Original:
        """The original as the result key sees it: its identity, from a
        fresh record (its body may not be on disk yet: ``with_body``)."""
        record = await self._current_record(source)
        return self._original(source, record, None)

    async def with_body(self, source: Source, original: Original) -> Original:
        """``original`` with its body on disk, downloaded again if it was
        evicted, for a render to open."""
        body_key = _body_key(original.remote_identity)
        stat = await self._blocking(lambda: _stat_entry(self.cache, body_key))
        # Twice at most: the first may join a refresh that needed no body.
        for _ in range(2):
            if stat is not None:
                break
            record = await self._coalesced(source, force_body=True)
            if _identity_of(source, record.identity) != original.remote_identity:
                # Changed at the origin meanwhile: render what is there now
                # under its own key (the next request keys it so).
                raise _Changed()
            stat = await self._blocking(lambda: _stat_entry(self.cache, body_key))
        if stat is None:
            raise Overloaded("the source cache is too small for the current traffic")
        return self._original(source, None, stat, identity=original.remote_identity)

    async def facts(
        self, source: Source, original: Original, read_header: Callable[[Original], OutputFacts]
    ) -> tuple[Original, OutputFacts]:
        """The header facts of ``original`` for its key: remembered, else
        from the note kept beside its body, else read from its body (on
        disk, or downloaded again) and noted, so that a result-cache hit
        needs neither the body nor the origin. The original is returned
        with its body when it had to be read."""
        identity = original.remote_identity
        known = self._facts.get(identity)
        if known is None:
            known = await self._blocking(lambda: self._read_facts(identity))
        if known is None:
            original = await self.with_body(source, original)
            read = await self._run_blocking(lambda: read_header(original))
            await self._blocking(lambda: self._write_facts(source, identity, read))
            known = read
        self._facts.put(identity, known)
        return original, known

    # -- freshness -----------------------------------------------------

    async def _current_record(self, source: Source) -> SourceRecord:
        self._forget_if_purged()
        now = self._clock()
        name = source.name
        missing_until = self._missing.get(name)
        if missing_until is not None:
            if missing_until > now:
                raise NotFound()
            self._missing.pop(name)
        remembered = self._records.get(name)
        if remembered is not None and remembered[1] > now:
            record, _, stale = remembered
            self._metrics.source_cache.labels(result="hit").inc()
            if stale:
                self._metrics.stale_served.inc()
            return record
        return await self._coalesced(source, force_body=False)

    async def _coalesced(self, source: Source, *, force_body: bool) -> SourceRecord:
        task = self._pending.get(source.name)
        if task is None:
            # A task of its own: a client that goes away does not cancel a
            # download other requests (and the cache) are waiting for.
            task = asyncio.create_task(self._refresh(source, force_body=force_body))
            self._pending[source.name] = task
            task.add_done_callback(lambda _: self._pending.pop(source.name, None))
        return await asyncio.shield(task)

    async def _refresh(self, source: Source, *, force_body: bool) -> SourceRecord:
        async with self._stripe(source):
            record = await self._blocking(lambda: self._read_record(source))
            now = self._clock()
            has_body = record is not None and await self._blocking(
                lambda: (
                    _stat_entry(self.cache, _body_key(_identity_of(source, record.identity)))
                    is not None
                )
            )
            fresh = record is not None and now - record.checked < self._freshness.ttl
            if record is not None and fresh and (has_body or not force_body):
                # Another worker confirmed it meanwhile.
                self._remember(source, record, record.checked + self._freshness.ttl)
                self._metrics.source_cache.labels(result="hit").inc()
                return record
            self._metrics.source_cache.labels(result="miss").inc()
            held = record if has_body and record is not None and record.conditional else None
            return await self._ask_origin(source, held, record, now)

    async def _ask_origin(
        self,
        source: Source,
        held: SourceRecord | None,
        previous: SourceRecord | None,
        now: float,
    ) -> SourceRecord:
        """Revalidate ``held`` (a record whose body is on disk) or download
        afresh; ``previous`` is what stale-if-error may fall back on."""
        try:
            outcome = await self._download(source, held.validators if held else None)
        except NotFound:
            self._missing.put(source.name, now + self._freshness.negative_ttl)
            self._records.pop(source.name)
            if previous is not None:
                self._metrics.revalidations.labels(outcome="changed").inc()
            raise
        except (BadGateway, OriginTimeout, Overloaded, TruncatedBody) as failure:
            if previous is None:
                raise
            self._metrics.revalidations.labels(outcome="failed").inc()
            if now - previous.checked >= self._freshness.ttl + self._freshness.stale_if_error:
                raise
            log.warning("%s: revalidation failed (%s); serving the copy held", source.name, failure)
            self._metrics.stale_served.inc()
            # Trusted again for a TTL, in this process only: a down origin is
            # asked once per TTL, not by every request.
            self._remember(source, previous, now + self._freshness.ttl, stale=True)
            return previous
        if outcome is None:
            assert held is not None
            record = SourceRecord(held.identity, held.validators, held.size, now)
            self._metrics.revalidations.labels(outcome="unchanged").inc()
        else:
            record = SourceRecord(outcome.identity, outcome.validators, outcome.size, now)
            if previous is not None:
                changed = previous.identity != outcome.identity
                self._metrics.revalidations.labels(
                    outcome="changed" if changed else "unchanged"
                ).inc()
        await self._blocking(lambda: self._write_record(source, record))
        self._remember(source, record, now + self._freshness.ttl)
        return record

    async def _download(self, source: Source, validators: Validators | None) -> Fetched | None:
        """Ask the origin; a new body is committed under its identity."""
        origin = source.client.name
        temp = await self._blocking(self.cache.new_temp)
        # SVG only from the operator's own origins: a URL source's is untrusted.
        allow_svg = self._allow_svg and source.client.trusted
        sink = BodySink(temp.descriptor, max_bytes=self._max_source_bytes, allow_svg=allow_svg)
        started = time.perf_counter()
        outcome = "failed"
        try:
            fetched = await source.client.fetch(source.key, validators, sink)
            outcome = "not_modified" if fetched is None else "fetched"
        except ServiceError as error:
            outcome = _outcome_of(error)
            await self._blocking(temp.discard)
            raise
        except BaseException:
            await self._blocking(temp.discard)
            raise
        finally:
            self._metrics.origin_requests.labels(origin=origin, outcome=outcome).inc()
            self._metrics.origin_duration.labels(origin=origin).observe(
                time.perf_counter() - started
            )
            self._metrics.origin_bytes.labels(origin=origin).inc(sink.received)
        if fetched is None:
            await self._blocking(temp.discard)
            return None
        try:
            key = _body_key(_identity_of(source, fetched.identity))
            await self._run_blocking(
                lambda: self.cache.commit(key, temp, _BODY, original=source.purge_name)
            )
        except CacheUnavailable as error:
            await self._run_blocking(temp.discard)
            raise Overloaded(f"the source cache cannot take the original: {error}") from None
        except BaseException:
            await self._run_blocking(temp.discard)
            raise
        return fetched

    def _forget_if_purged(self) -> None:
        """Drop the memos once any process has purged since they were filled."""
        generation = self._purge_generation()
        if generation != self._seen_generation:
            self._seen_generation = generation
            self._records.clear()
            self._missing.clear()

    def _remember(
        self, source: Source, record: SourceRecord, until: float, *, stale: bool = False
    ) -> None:
        self._records.put(source.name, (record, until, stale))

    # -- records on disk (blocking) -------------------------------------

    def _read_record(self, source: Source) -> SourceRecord | None:
        key = _record_key(source)
        for _ in range(2):  # once more when another worker just replaced it
            opened = self.cache.open_entry(key)
            if opened is None:
                continue
            entry, descriptor = opened
            with os.fdopen(descriptor, "rb") as handle:
                return SourceRecord.from_json(handle.read(entry.size))
        return None

    def _write_record(self, source: Source, record: SourceRecord) -> None:
        """Best effort: a record that cannot be written (a full disk) costs
        the other workers a revalidation of their own, nothing more."""
        try:
            temp = self.cache.new_temp()
        except CacheUnavailable as error:
            log.warning("source cache: cannot record %s: %s", source.name, error)
            return
        try:
            os.write(temp.descriptor, record.to_json())
            self.cache.commit(
                _record_key(source), temp, _RECORD, replace=True, original=source.purge_name
            )
        except (CacheUnavailable, OSError) as error:
            temp.discard()
            log.warning("source cache: cannot record %s: %s", source.name, error)

    def _read_facts(self, identity: str) -> OutputFacts | None:
        opened = self.cache.open_entry(_facts_key(identity))
        if opened is None:
            return None
        entry, descriptor = opened
        with os.fdopen(descriptor, "rb") as handle:
            return OutputFacts.from_json(handle.read(entry.size))

    def _write_facts(self, source: Source, identity: str, facts: OutputFacts) -> None:
        """Best effort, like a record: a note that cannot be written costs a
        header read of the body later."""
        try:
            temp = self.cache.new_temp()
        except CacheUnavailable as error:
            log.warning("source cache: cannot note the header of %s: %s", source.name, error)
            return
        try:
            os.write(temp.descriptor, facts.to_json())
            self.cache.commit(_facts_key(identity), temp, _FACTS, original=source.purge_name)
        except (CacheUnavailable, OSError) as error:
            temp.discard()
            log.warning("source cache: cannot note the header of %s: %s", source.name, error)

    # -- coalescing across workers ---------------------------------------

    @contextlib.asynccontextmanager
    async def _stripe(self, source: Source) -> AsyncIterator[None]:
        """Hold the source's lock stripe (across processes). Each holder
        opens the file anew: flock belongs to an open file, so two sources
        of one stripe in one process must not share a descriptor."""
        stripe = hashlib.sha256(source.name.encode()).hexdigest()[:_STRIPE_DIGITS]
        path = os.path.join(self._locks, stripe)
        try:
            descriptor = await self._run_blocking(lambda: _open_lock(path))
        except OSError as error:
            raise Overloaded(f"the source cache cannot be used now: {error}") from None
        try:
            deadline = time.monotonic() + self._stripe_wait
            while not _try_lock(descriptor):
                if time.monotonic() > deadline:
                    raise Overloaded("another worker's download of this original is stuck")
                await asyncio.sleep(_LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    # -- originals --------------------------------------------------------

    def _original(
        self,
        source: Source,
        record: SourceRecord | None,
        stat: os.stat_result | None,
        *,
        identity: str | None = None,
    ) -> Original:
        if identity is None:
            assert record is not None
            identity = _identity_of(source, record.identity)
        body_key = _body_key(identity)
        return Original(
            relative=source.name,
            path=os.path.join(self.cache.directory, "objects", body_key[:2], body_key),
            size=stat.st_size if stat else (record.size if record else 0),
            mtime_ns=stat.st_mtime_ns if stat else 0,
            inode=stat.st_ino if stat else 0,
            remote_identity=identity,
            purge_name=source.purge_name,
        )


V = TypeVar("V")


class _Memo(Generic[V]):
    """A dict bounded by the bytes of its keys, dropping the oldest put."""

    def __init__(self, max_bytes: int) -> None:
        self._items: dict[str, V] = {}
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def put(self, key: str, value: V) -> None:
        self.pop(key)
        self._items[key] = value
        self._bytes += len(key) + _ENTRY_OVERHEAD
        while self._bytes > self._max_bytes:
            self.pop(next(iter(self._items)))

    def pop(self, key: str) -> None:
        if self._items.pop(key, None) is not None:
            self._bytes -= len(key) + _ENTRY_OVERHEAD

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


class _Changed(Exception):
    """The original changed at its origin between keying and rendering."""


OriginalChangedRemotely = _Changed


def _outcome_of(error: ServiceError) -> str:
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, OriginTimeout):
        return "timeout"
    if error.status == 403:
        return "refused"
    if error.status == 422:
        return "unprocessable"
    return "failed"


def _record_key(source: Source) -> str:
    return "r" + hashlib.sha256(source.name.encode()).hexdigest()


def _identity_of(source: Source, origin_identity: str) -> str:
    """An original's identity: which source, and which body of it."""
    return f"{source.name}\0{origin_identity}"


def _body_key(identity: str) -> str:
    return "b" + hashlib.sha256(identity.encode()).hexdigest()


def _facts_key(identity: str) -> str:
    return "f" + hashlib.sha256(identity.encode()).hexdigest()


def _stat_entry(cache: DiskCache, key: str) -> os.stat_result | None:
    """The body's file status, or None when it is not (or no longer) held;
    noted as used, for the LRU order."""
    opened = cache.open_entry(key)
    if opened is None:
        return None
    try:
        return os.fstat(opened[1])
    finally:
        os.close(opened[1])


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _open_lock(path: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
