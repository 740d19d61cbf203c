"""One thread per process that stops renders at their deadline.

libvips checks a kill flag on the image it computes between tiles, and the
flag may be set from any thread. Setting it from here, when a deadline
expires, means libvips never calls into Python while it computes pixels.
The deadline used to be checked by an ``eval`` signal handler on each
watched image, which libvips' worker thread called 40-60 times per 800-px
render: each call had to take the GIL back from the event loop or the
other render thread (which hand it over only when they block, or after
the 5 ms switch interval), so one process with two render threads lost
time that two processes with one did not.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Protocol


class Expiring(Protocol):
    """What the watchdog holds: when it expires, and what to do then."""

    @property
    def expires(self) -> float: ...  # time.monotonic()

    def expire(self) -> None: ...


class Watchdog:
    """Calls ``expire()`` of each armed deadline once its time has come,
    from a daemon thread started with the first one. An entry whose owner
    finished early stays in the heap until its time (``expire`` is then a
    no-op): the heap holds at most the renders of one timeout's span."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._armed: list[tuple[float, int, Expiring]] = []
        self._order = itertools.count()  # ties never compare the deadlines
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Expiring) -> None:
        with self._condition:
            entry = (deadline.expires, next(self._order), deadline)
            heapq.heappush(self._armed, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="render-watchdog", daemon=True
                )
                self._thread.start()
            elif self._armed[0] is entry:  # sooner than the one it sleeps for
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    wait = self._armed[0][0] - time.monotonic() if self._armed else None
                    if wait is not None and wait <= 0:
                        due = heapq.heappop(self._armed)[2]
                        break
                    self._condition.wait(wait)
            due.expire()


WATCHDOG = Watchdog()
