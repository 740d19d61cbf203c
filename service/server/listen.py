"""Whether the service can listen where it was told to, found before starting.

Standard library only: the command runs it before it knows whether this
process will serve or supervise, and a supervisor never loads aiohttp.
"""

from __future__ import annotations

import socket


def listen_problem(host: str, port: int, *, reuse_port: bool) -> str | None:
    """Why the service could not listen on ``host:port`` (a name that does
    not resolve, a port in use, an address not on this machine), found by
    binding throwaway sockets as aiohttp will; None when it can. Without it
    those errors surface as a traceback from deep inside aiohttp, and with
    ``--workers`` as workers that die and are replaced forever."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid name"
        return f"--host: cannot resolve {host!r} ({reason})"
    for family, kind, protocol, _, address in addresses:
        try:
            probe = socket.socket(family, kind, protocol)
        except OSError:
            continue  # a family this kernel lacks (IPv6 off): asyncio skips it too
        with probe:
            # The options asyncio's create_server sets, so the probe fails
            # exactly when the real bind would.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None
