"""Downloads at once per origin host (``--origin-concurrency``), and a bound
on the downloads waiting for a slot, beyond which a request is a 503.

One per process, shared by the HTTP fetcher and the S3 origins: a host
(scheme, name, port; an S3 endpoint) gets at most ``per_host`` downloads at
once from this worker, so a burst of new originals does not open hundreds
of connections to one origin. Waiting is bounded like the render queue
(by ``--queue``, in a count of its own: a download waits before its render
is queued).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass

from ..errors import Overloaded


@dataclass(slots=True)
class _HostUse:
    semaphore: asyncio.Semaphore
    users: int = 0  # holding or awaiting the semaphore; the entry goes at 0


class HostSlots:
    def __init__(
        self,
        per_host: int,
        waiting: int,
        *,
        in_flight: int | None = None,
        on_waiting: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._per_host = per_host
        self._max_waiting = waiting
        # Downloads held or awaited over all hosts: each ends in a render, so
        # no more than the renders that could be admitted (running and
        # queued); many hosts at once must not open a download each.
        self._max_in_flight = in_flight
        self._in_flight = 0
        self._on_waiting = on_waiting  # the count of waiting downloads, when it changes
        # Per host: entries go when unused, so URL sources from many hosts
        # leave nothing behind.
        self._hosts: dict[Hashable, _HostUse] = {}
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, host: Hashable) -> AsyncIterator[None]:
        """Hold one of ``host``'s slots; Overloaded when too many wait."""
        use = self._hosts.get(host)
        if use is None:
            use = self._hosts[host] = _HostUse(asyncio.Semaphore(self._per_host))
        if (use.semaphore.locked() and self._waiting >= self._max_waiting) or (
            self._max_in_flight is not None and self._in_flight >= self._max_in_flight
        ):
            if not use.users:
                del self._hosts[host]
            raise Overloaded("too many downloads are waiting for the origin, try again")
        use.users += 1
        self._in_flight += 1
        try:
            if use.semaphore.locked():
                self._waiting += 1
                self._on_waiting(self._waiting)
                try:
                    await use.semaphore.acquire()
                finally:
                    self._waiting -= 1
                    self._on_waiting(self._waiting)
            else:
                await use.semaphore.acquire()
            try:
                yield
            finally:
                use.semaphore.release()
        finally:
            use.users -= 1
            self._in_flight -= 1
            if not use.users:
                del self._hosts[host]
