"""A deadline for a request's head on an idle connection, against slow
clients (slowloris).

aiohttp gives a connection its keep-alive timeout (75 s) to send a request
and nothing shorter: a client that opens connections and sends nothing, or
trickles a request's headers a byte at a time, holds a descriptor for all of
it, so a few hundred connections a second keep a replica's 20,000
descriptors in use and /healthz unanswered. Here such a connection is
closed after ``--header-timeout``:

- a new connection must deliver a whole request head within the deadline;
- so must a request whose first bytes arrive while the connection is idle,
  waiting for one (an idle keep-alive connection that sends nothing keeps
  aiohttp's 75 s, longer than nginx's upstream keep-alive, as it must be);
- a connection is closed only while it waits for a request, never while a
  response is computed or sent, nor for bytes that arrive meanwhile (a
  body, a pipelined request).

It bounds what a connection costs a client that never completes a request.
A client that completes one and then idles, or sends the next head in the
same packet as the last bytes of the previous, still holds its connection
for aiohttp's keep-alive timeout: a public replica still wants nginx in
front (``deploy/nginx.conf``), which caps both.

aiohttp has no hook for this, so ``install`` makes its server build the
``RequestHandler`` subclass below (the way ``protocol_errors`` patches the
handler's error answer); ``tests/test_security.py`` fails if an aiohttp
upgrade routes around it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web_protocol, web_server

log = logging.getLogger(__name__)


class _HeadDeadlineHandler(web_protocol.RequestHandler):
    __slots__ = ("_head_timer",)

    seconds: float = 10.0  # set by install

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - aiohttp's
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm()  # a whole head arrived: the handler has it now
        elif self._head_timer is None and self._waiting_for_a_request():
            self._arm()  # part of a head: it has the deadline to be whole

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self._loop.call_later(self.seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _waiting_for_a_request(self) -> bool:
        """Whether the handler is idle, between requests (aiohttp's own test
        before its keep-alive close); not while one is handled or sent."""
        return self._waiter is not None and not self._waiter.done()

    def _deadline_passed(self) -> None:
        # A head that arrived cancelled the timer (asyncio skips a cancelled
        # callback even once due), so none came: close if still idle.
        self._head_timer = None
        if self._waiting_for_a_request():
            self.force_close()


# What the subclass reads of aiohttp's handler (its __slots__, 3.14).
_ATTRIBUTES_USED = ("_request_count", "_waiter", "_loop")


def install(seconds: float) -> bool:
    """Give every connection of this process's servers the head deadline;
    False (with a warning), and aiohttp's own behaviour, if this aiohttp's
    handler no longer has what the deadline reads."""
    missing = missing_attributes(web_protocol.RequestHandler)
    if missing or not hasattr(web_server, "RequestHandler"):
        log.warning(
            "this aiohttp's RequestHandler lacks %s: no --header-timeout, slow clients "
            "get aiohttp's keep-alive timeout",
            ", ".join(missing) or "its module name",
        )
        return False
    _HeadDeadlineHandler.seconds = seconds
    web_server.RequestHandler = _HeadDeadlineHandler
    return True


def missing_attributes(handler_class: type) -> list[str]:
    """What the deadline reads that ``handler_class`` (aiohttp's handler,
    slotted) does not declare: empty when ``install`` may go ahead."""
    declared = {
        name for cls in handler_class.__mro__ for name in getattr(cls, "__slots__", ())
    } | set(dir(handler_class))
    return [name for name in _ATTRIBUTES_USED if name not in declared]
