"""A per-process budget for the memory that renders decode whole images into.

Most renders stream: shrink-on-load and sequential access keep a few lines
in memory whatever the original's size. Some originals cannot stream.
A progressive JPEG needs its whole coefficient buffer (3 bytes a pixel for
4:2:0 colour, however small the output), an interlaced PNG its whole image,
a GIF a full RGBA canvas, HEIF/AVIF its decoded planes and a copy. A 100 MP
progressive JPEG is within ``--max-source-pixels``: one 800-px render of it
peaked 316 MiB above the idle process, two side by side 615 MiB
(``scripts/measure_decode_budget.py``).
``--concurrency`` of them at once would take a small container past its
memory limit, and the kernel would kill the worker with every render in it.

Renders that need such a buffer reserve it here, as estimated from the
header, before they are handed to a render thread. They wait on the event
loop (no thread, no render token held) until the reservations running
leave room; one larger than the whole budget runs alone. Streaming renders
reserve nothing and never wait. Waiters are served in arrival order, so a
large original is not overtaken forever by smaller ones.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable


class DecodeBudget:
    """Bytes that renders running at once may decode into (one event loop)."""

    def __init__(self, limit: int, *, on_wait: Callable[[], object] | None = None) -> None:
        self.limit = limit
        self.reserved = 0
        self._on_wait = on_wait
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, amount: int) -> None:
        """Wait until ``amount`` bytes fit, then hold them until ``release``."""
        if amount <= 0:
            return
        if not self._waiters and self._fits(amount):
            self.reserved += amount
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (amount, future)
        self._waiters.append(entry)
        if self._on_wait is not None:
            self._on_wait()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(amount)  # granted just as the waiter gave up
            else:
                # Cancelled: _grant may have dropped the entry already.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._grant()  # the next one may fit now
            raise

    def release(self, amount: int) -> None:
        if amount <= 0:
            return
        self.reserved -= amount
        self._grant()

    def _fits(self, amount: int) -> bool:
        # Alone, any render may run: the budget orders big renders, it never
        # refuses one (the source limits do that).
        return self.reserved == 0 or self.reserved + amount <= self.limit

    def _grant(self) -> None:
        while self._waiters:
            amount, future = self._waiters[0]
            if future.done():  # its waiter was cancelled and has not run yet
                self._waiters.popleft()
                continue
            if not self._fits(amount):
                return
            self._waiters.popleft()
            self.reserved += amount
            future.set_result(None)
