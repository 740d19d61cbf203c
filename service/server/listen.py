"""The listening sockets, bound once by the command before anything starts.

Standard library only: the command binds them before it becomes the
supervisor, which never loads aiohttp. The sockets outlive every worker:
the supervisor keeps them open and hands them to each worker it starts, so
the port stays bound, and connections queue in the backlog, while a crashed
worker is being replaced (with SO_REUSEPORT alone, nothing listened while
the only worker was down).
"""

from __future__ import annotations

import socket

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


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, set as
    asyncio's create_server would set them, and inheritable by the
    processes the supervisor starts. ListenError for a name that does not
    resolve, a port in use or an address not on this machine: otherwise
    those surfaced as a traceback from deep inside aiohttp."""
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
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                listener.bind(address)
            except OSError as error:
                raise ListenError(
                    f"cannot listen on {host}:{port}: {error.strerror or error}", 1
                ) from None
            listener.listen(BACKLOG)
            listener.set_inheritable(True)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    if not listeners:
        raise ListenError(f"cannot listen on {host}:{port}: no usable address", 1)
    return listeners
