"""Renders side by side, except a suspect, which renders alone.

An original that was in flight when a worker crashed (process/crashes.py)
is next rendered with no other render in flight in its worker: if it
crashes the worker again, it alone is blamed, and an innocent neighbour
that happened to share the crash the first time is not.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class SoloLock:
    """Shared by ordinary renders; held alone by a suspect's. A suspect
    waiting keeps new ordinary renders from starting, so it is not
    overtaken forever."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._waiting_alone += 1
            self._changed.wait_for(lambda: not self._alone and self._running == 0)
            self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()
