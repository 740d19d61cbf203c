"""Render slots shared by the ``--workers`` processes of one service.

The kernel spreads *connections* over workers (SO_REUSEPORT), and a client
or proxy keeps its connections for minutes: one worker can hold three busy
connections while another holds one. With a fixed number of renders per
worker, the first queues while the second's core idles, and both latency and
throughput depend on how the connections happened to land. So every worker
may run up to ``--concurrency`` renders, but each render first takes one of
``--total-concurrency`` tokens that the supervisor hands out in one FIFO
across all workers: one render per core machine-wide, whoever holds the
connection.

The protocol is GNU make's jobserver idea over one socketpair per worker:
the worker writes ``+`` to ask and ``-`` to give back; the supervisor answers
each ask, in order, with ``!``. A worker that dies closes its end, and the
supervisor takes back every token it held, so a SIGKILL loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

ASK = b"+"
GIVE_BACK = b"-"
GRANT = b"!"


class TokenClient:
    """A worker's side: blocking ``held()`` for render threads."""

    def __init__(self, connection: socket.socket, on_lost: Callable[[], None]) -> None:
        self._connection = connection
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._lost = False
        self._reader = threading.Thread(target=self._read_grants, name="render-tokens", daemon=True)
        self._reader.start()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Block until a token is granted; give it back on leaving."""
        granted = threading.Event()
        with self._lock:
            if self._lost:
                granted.set()
            else:
                self._waiting.append(granted)
                self._send(ASK)
        granted.wait()  # set by the reader, or at once once the supervisor is gone
        try:
            yield
        finally:
            with self._lock:
                if not self._lost:
                    self._send(GIVE_BACK)

    def _send(self, message: bytes) -> None:
        """Under the lock: write, or fall back to no limit if the peer is gone."""
        try:
            self._connection.sendall(message)
        except OSError:
            self._give_up()

    def _read_grants(self) -> None:
        while True:
            try:
                data = self._connection.recv(256)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                for _ in range(data.count(GRANT)):
                    if self._waiting:
                        self._waiting.popleft().set()
        with self._lock:
            self._give_up()
        self._on_lost()

    def _give_up(self) -> None:
        """Under the lock: no supervisor, so no shared limit; wake every waiter
        (the per-process ``--concurrency`` still bounds renders)."""
        if not self._lost:
            log.warning("the supervisor's render tokens are gone")
        self._lost = True
        while self._waiting:
            self._waiting.popleft().set()


class TokenServer:
    """The supervisor's side: ``tokens`` renders at once over all workers."""

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError(f"need at least one token, got {tokens}")
        self.free = tokens
        self._held: dict[socket.socket, int] = {}
        self._asks: deque[socket.socket] = deque()

    def add(self, connection: socket.socket) -> None:
        self._held[connection] = 0

    def held_by(self, connection: socket.socket) -> int:
        return self._held.get(connection, 0)

    def receive(self, connection: socket.socket, data: bytes) -> None:
        """Handle what a worker wrote: asks queue, give-backs free tokens."""
        if connection not in self._held:
            return
        for byte in data:
            if byte == ASK[0]:
                self._asks.append(connection)
            elif byte == GIVE_BACK[0] and self._held[connection] > 0:
                self._held[connection] -= 1
                self.free += 1
        self._grant()

    def remove(self, connection: socket.socket) -> None:
        """A worker is gone: its tokens come back, its asks are void."""
        if connection not in self._held:
            return
        self.free += self._held.pop(connection)
        self._asks = deque(asker for asker in self._asks if asker is not connection)
        self._grant()

    def _grant(self) -> None:
        while self.free and self._asks:
            connection = self._asks.popleft()
            try:
                connection.sendall(GRANT)
            except OSError:
                self.remove(connection)  # it died between asking and now
                return
            self._held[connection] += 1
            self.free -= 1
