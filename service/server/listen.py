"""The listening sockets, bound by the command before anything starts.

Standard library only: the command binds them before it becomes the
supervisor, which never loads aiohttp.

- One worker (the default): the supervisor keeps the sockets open and hands
  them to each worker it starts, so the port stays bound, and connections
  queue in the backlog, while a crashed worker is being replaced (with
  SO_REUSEPORT alone, nothing listened while the only worker was down).
- Several: each worker binds its own socket with SO_REUSEPORT, and the
  kernel spreads new connections evenly over the ones listening; a crashed
  worker's peers keep the port. One shared socket would let whichever
  worker woke first take a whole burst of connections (asyncio accepts up
  to its backlog per wake-up): cache hits over two workers fell to 0.75x.
  Here the command only probes that the workers' binds will succeed.
"""

from __future__ import annotations

import socket
from typing import Any

# run_app's default backlog is 128: past it, a burst of new connections is
# refused by the kernel instead of queued (and answered 503 when busy).
BACKLOG = 1024


class ListenError(Exception):
    """The service cannot listen where it was told to: a one-line reason,
    and the exit status (2 for a --host that does not resolve, else 1)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bind_listeners(host: str, port: int, *, probe_reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, set as
    asyncio's create_server would set them, and inheritable by the
    processes the supervisor starts. ListenError for a name that does not
    resolve, a port in use or an address not on this machine: otherwise
    those surfaced as a traceback from deep inside aiohttp. With
    ``probe_reuse_port``, bound with SO_REUSEPORT as the workers will bind
    theirs, then closed: none is returned."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid name"
        raise ListenError(f"--host: cannot resolve {host!r} ({reason})", 2) from None
    listeners: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, protocol, _, address in addresses:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            try:
                listener = socket.socket(family, kind, protocol)
            except OSError:
                continue  # a family this kernel lacks (IPv6 off): asyncio skips it too
            listeners.append(listener)
            _bind(listener, address, reuse_port=probe_reuse_port)
    except OSError as error:
        for listener in listeners:
            listener.close()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error}", 1) from None
    if not listeners:
        raise ListenError(f"cannot listen on {host}:{port}: no usable address", 1)
    if probe_reuse_port:
        for listener in listeners:
            listener.close()
        return []
    return listeners


def _bind(listener: socket.socket, address: tuple[Any, ...], *, reuse_port: bool) -> None:
    """Bind (and, unless probing for SO_REUSEPORT workers, listen) with the
    options asyncio's create_server sets, so a probe fails exactly when the
    workers' own binds would."""
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if listener.family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    listener.bind(address)
    if not reuse_port:
        listener.listen(BACKLOG)
        listener.set_inheritable(True)
