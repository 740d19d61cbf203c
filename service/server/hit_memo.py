"""The memo of the hit path: what a request for a local original was
answered with, so that the same request again is served on the event loop.

A hit used to cost a trip to a thread (resolving the original: a
``realpath`` walking every component of its path, then a ``stat``), the
spec's parse, the format's negotiation, the canonical request and the key's
digest, all to find what the same request found a moment ago. This memo
keeps, per request, the variant's key and the answer's headers; the same
request within ``WINDOW_SECONDS`` opens the cached file by its key on the
loop (an ``open`` and an ``fstat``, no index read: ``DiskCache.
open_remembered``) and answers, without a thread hop.

What is a request's identity here: its raw path with the query (what the
signature, the spec and the original's path are all read from, so an
answer is only remembered after the signature was checked), the ``Accept``
header (the format choice), and with ``--client-hints`` the hint headers.
The settings are the process's own, fixed for its life.

What the window costs: an original rewritten in place (a new mtime, size or
inode), or removed, is seen within ``WINDOW_SECONDS`` (1 s) of the change,
not at once: until then the renders of the old file are served for the
requests remembered. After the window the request goes the full way again
(resolve, stat, key) and is remembered anew. A purge, by this process or
any other (the purge generation, service/purge_stamp.py, read with one
``pread`` per lookup), drops the whole memo at once. Only answers that went
the full way are remembered: remote originals (their source cache decides
when they are fresh), fallbacks and errors never are.

Bounded: ``LIMIT`` requests, the oldest remembered dropped first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiohttp import web
from multidict import CIMultiDict

WINDOW_SECONDS = 1.0
LIMIT = 4096
_HINT_HEADERS = ("Sec-CH-Width", "Width", "Sec-CH-DPR", "DPR")

RequestIdentity: TypeAlias = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a request was answered with, besides its file."""

    digest: str  # the variant's key
    etag: str
    headers: CIMultiDict[str]  # the image headers but Content-Type and X-Cache
    until: float  # monotonic time after which the original is resolved again


class HitMemo:
    """One per process; used from the event loop only."""

    def __init__(
        self,
        generation: Callable[[], int],
        *,
        client_hints: bool,
        window: float = WINDOW_SECONDS,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._generation = generation
        self._seen = generation()
        self._client_hints = client_hints
        self._window = window
        self._limit = limit
        self.clock = clock  # public: the tests move it past the window
        self._remembered: dict[RequestIdentity, Remembered] = {}

    def identity(self, request: web.BaseRequest) -> RequestIdentity:
        """What of ``request`` decides its answer (the settings aside)."""
        headers = request.headers
        accept = headers.get("Accept", "")
        if not self._client_hints:
            return (request.raw_path, accept)
        return (request.raw_path, accept, *(headers.get(name, "") for name in _HINT_HEADERS))

    def get(self, identity: RequestIdentity) -> Remembered | None:
        """The answer remembered for ``identity``, within its window and
        since the last purge; None otherwise."""
        generation = self._generation()
        if generation != self._seen:
            self._seen = generation
            self._remembered.clear()
            return None
        remembered = self._remembered.get(identity)
        if remembered is None:
            return None
        if self.clock() > remembered.until:
            del self._remembered[identity]
            return None
        return remembered

    def remember(
        self, identity: RequestIdentity, digest: str, etag: str, headers: CIMultiDict[str]
    ) -> None:
        """Remember an answer that went the full way (its original resolved
        just now); ``headers`` are copied."""
        remembered = Remembered(digest, etag, headers.copy(), self.clock() + self._window)
        self._remembered.pop(identity, None)  # to the end: the newest
        self._remembered[identity] = remembered
        if len(self._remembered) > self._limit:
            del self._remembered[next(iter(self._remembered))]

    def forget(self, identity: RequestIdentity) -> None:
        self._remembered.pop(identity, None)

    def clear(self) -> None:
        self._remembered.clear()

    def __len__(self) -> int:
        return len(self._remembered)
