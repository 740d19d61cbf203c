"""A deadline for each request's head, against slow clients (slowloris).

aiohttp gives a connection its keep-alive timeout (75 s) to send a request
and nothing shorter: a client that trickles a request's headers a byte at a
time holds a descriptor for all of it, so a few hundred connections a second
keep a replica's 20,000 descriptors in use and /healthz unanswered. nginx in
front (``deploy/nginx.conf``) closes them after its ``client_header_timeout``;
a replica on its own now does the same after ``--header-timeout``:

- a new connection must deliver a whole request head within the deadline;
- so must a request whose first bytes arrive on an idle keep-alive
  connection (an idle connection that sends nothing keeps aiohttp's 75 s,
  longer than nginx's upstream keep-alive, as it must be);
- a connection is only ever closed while it waits for a request, never while
  a response is being computed or sent.

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
    __slots__ = ("_head_timer", "_heads_when_armed")

    seconds: float = 10.0  # set by install

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - aiohttp's
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_when_armed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm()  # a whole head arrived: the handler has it now
        elif self._head_timer is None:
            self._arm()  # part of a head: it has the deadline to be whole

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._heads_when_armed = self._request_count
        self._head_timer = self._loop.call_later(self.seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _deadline_passed(self) -> None:
        self._head_timer = None
        if self._request_count != self._heads_when_armed:
            return
        waiting_for_a_request = self._waiter is not None and not self._waiter.done()
        if waiting_for_a_request:
            self.force_close()
        else:
            # Busy with the previous request (pipelined bytes came early):
            # the head's time starts again once it may be read.
            self._arm()


# What the subclass reads of aiohttp's handler (its __slots__, 3.14).
_ATTRIBUTES_USED = ("_request_count", "_waiter", "_loop")


def install(seconds: float) -> bool:
    """Give every connection of this process's servers the head deadline;
    False (with a warning), and aiohttp's own behaviour, if this aiohttp's
    handler no longer has what the deadline reads."""
    slots = {
        name
        for cls in web_protocol.RequestHandler.__mro__
        for name in getattr(cls, "__slots__", ())
    }
    missing = [name for name in _ATTRIBUTES_USED if name not in slots]
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
