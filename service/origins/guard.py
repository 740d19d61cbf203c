"""The fetcher's guard: connect only to addresses that were checked.

aiohttp connects to exactly the addresses its resolver returns, so checking
them there closes the DNS-rebinding window: the name is resolved once, every
address it resolves to is checked, and the connection is made to one of
those, with no second lookup between the check and the connect (ipx's open
window). A name with any refused address is refused whole, so what is
connected to never depends on which address was tried first. aiohttp skips
the resolver for IP literals, which ``check_literal`` covers before a
request is made.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from .addresses import address_refusal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (family, type, proto, canonname, sockaddr), as getaddrinfo gives them.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


class AddressRefused(Exception):
    """A host is or resolves to an address the SSRF rules refuse. Not an
    OSError, so aiohttp passes it through rather than calling it a DNS
    failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_address(
    host: str,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    allowed: Sequence[Network],
) -> None:
    reason = address_refusal(address, allowed)
    if reason is not None:
        shown = host if host == str(address) else f"{host} ({address})"
        raise AddressRefused(f"{shown} is refused ({reason}): URL sources may not reach it")


def guarded_socket_factory(allowed: Sequence[Network]) -> Callable[[AddrInfo], socket.socket]:
    """A socket factory for aiohttp that checks the address once more as it
    connects. The resolver has checked it already; this makes the rule hold
    even if a later aiohttp connected to an address the resolver did not
    return (imgproxy checks at dial time for the same reason)."""

    def open_socket(addr_info: AddrInfo) -> socket.socket:
        family, kind, proto, _, address = addr_info
        host = str(address[0])
        check_address(host, ipaddress.ip_address(host.partition("%")[0]), allowed)
        return socket.socket(family, kind, proto)

    return open_socket


class GuardedResolver(AbstractResolver):
    """Resolves with ``base``, then refuses the name unless every address
    it resolved to passes the SSRF rules (``allowed`` opens chosen networks)."""

    def __init__(
        self,
        allowed: Sequence[Network] = (),
        *,
        base: AbstractResolver | None = None,
        on_refusal: Callable[[], None] = lambda: None,
    ) -> None:
        self._base = base or ThreadedResolver()
        self._allowed = tuple(allowed)
        self._on_refusal = on_refusal

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._base.resolve(host, port, family)
        try:
            for result in results:
                # A scoped IPv6 address (fe80::1%eth0) is link-local anyway.
                address = ipaddress.ip_address(result["host"].partition("%")[0])
                check_address(host, address, self._allowed)
        except AddressRefused:
            self._on_refusal()
            raise
        return results

    async def close(self) -> None:
        await self._base.close()
