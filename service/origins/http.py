"""HTTP(S) downloads: configured origins and URL sources, redirects, limits.

Two client sessions, one per kind of trust. A configured origin is the
operator's own (its host may be private or loopback) and is fetched through
a plain resolver, with its configured headers. Everything else, a URL
source or a redirect hop that leaves its origin, goes through the guarded
session, whose resolver refuses the SSRF ranges (guard.py), and only to a
host ``--url-sources`` allows. Once a redirect chain leaves its origin it
never regains that trust, and the origin's headers never go anywhere else.

No client header is ever forwarded (so neither Cookie nor Authorization);
the origin sees our User-Agent, ``Accept-Encoding: identity`` (the byte
limit counts the bytes that arrive: nothing is inflated) and, when
revalidating, the validators of the copy we hold.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from ..errors import (
    BadGateway,
    Forbidden,
    NotFound,
    OriginTimeout,
    UnprocessableImage,
)
from .body import BodySink, TruncatedBody
from .config import URL_SOURCES
from .fetched import Fetched, Validators
from .guard import (
    AddressRefused,
    AddrInfo,
    GuardedResolver,
    check_address,
    guarded_socket_factory,
)
from .hosts import HostPatterns, literal_address
from .slots import HostSlots

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024
_MAX_VALIDATOR = 256
_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)
USER_AGENT = f"image-factory/{version('image-factory')}"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What every download of this process is held to."""

    url_sources: HostPatterns | None  # None: no URL sources, no off-origin redirects
    allowed_networks: tuple[Network, ...] = ()
    max_redirects: int = 3
    connect_timeout: float = 3.0
    total_timeout: float = 10.0


class ConnectorFactory(Protocol):
    def __call__(
        self,
        *,
        resolver: aiohttp.abc.AbstractResolver,
        socket_factory: Callable[[AddrInfo], socket.socket] | None,
    ) -> aiohttp.BaseConnector: ...


def _tcp_connector(
    *,
    resolver: aiohttp.abc.AbstractResolver,
    socket_factory: Callable[[AddrInfo], socket.socket] | None,
) -> aiohttp.BaseConnector:
    return aiohttp.TCPConnector(
        resolver=resolver, limit=0, ttl_dns_cache=10, socket_factory=socket_factory
    )


def same_origin(one: URL, other: URL) -> bool:
    return (one.scheme, one.raw_host, one.port) == (other.scheme, other.raw_host, other.port)


class HttpFetcher:
    """One per process: the two sessions and the per-host download slots."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        connector: ConnectorFactory = _tcp_connector,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        slots: HostSlots | None = None,
        on_refusal: Callable[[], None] = lambda: None,
    ) -> None:
        self.policy = policy
        self._on_refusal = on_refusal
        self._slots = slots or HostSlots(per_host=8, waiting=64)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=policy.connect_timeout, connect=policy.connect_timeout
        )
        common: dict[str, object] = {
            "timeout": timeout,
            "auto_decompress": False,  # the limit counts bytes received
            "trust_env": False,  # an HTTP_PROXY must not route around the guard
            "cookie_jar": aiohttp.DummyCookieJar(),  # no origin sets cookies for another
            "headers": {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        }
        self._trusted = aiohttp.ClientSession(
            connector=connector(resolver=aiohttp.ThreadedResolver(), socket_factory=None),
            **common,  # type: ignore[arg-type]
        )
        guarded = GuardedResolver(policy.allowed_networks, base=resolver, on_refusal=on_refusal)
        self._guarded = aiohttp.ClientSession(
            connector=connector(
                resolver=guarded, socket_factory=guarded_socket_factory(policy.allowed_networks)
            ),
            **common,  # type: ignore[arg-type]
        )

    async def close(self) -> None:
        await self._trusted.close()
        await self._guarded.close()

    def check_url_source(self, url: URL) -> URL:
        """The URL to request for a URL source or an off-origin hop (an IP
        literal in any numeric spelling is rewritten to its address), or
        Forbidden before any request is made."""
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise Forbidden("only absolute http and https URLs can be fetched")
        if url.user or url.password:
            raise Forbidden("a source URL may not carry credentials")
        patterns = self.policy.url_sources
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
        if patterns is None or not patterns.allows(url.raw_host or "", port):
            self._on_refusal()
            raise Forbidden(f"{url.raw_host} is not an allowed URL source host")
        try:
            address = literal_address(url.raw_host or "")
        except ValueError:
            raise Forbidden(f"{url.raw_host!r} is not a valid host") from None
        if address is None:
            return url
        try:
            check_address(url.raw_host or "", address, self.policy.allowed_networks)
        except AddressRefused as refusal:
            self._on_refusal()
            raise Forbidden(refusal.message) from None
        return url.with_host(str(address))

    async def get(
        self,
        url: URL,
        *,
        origin: URL | None,
        headers: Mapping[str, str],
        validators: Validators | None,
        sink: BodySink,
    ) -> Fetched | None:
        """Download ``url`` into ``sink``; None when ``validators`` still
        hold (304). ``origin`` is the configured origin it belongs to (None
        for a URL source); ``headers`` are that origin's own."""
        try:
            async with asyncio.timeout(self.policy.total_timeout):
                return await self._follow(url, origin, headers, validators, sink)
        except TimeoutError:
            raise OriginTimeout(
                f"the origin did not answer within {self.policy.total_timeout:g} s"
            ) from None

    async def _follow(
        self,
        url: URL,
        origin: URL | None,
        headers: Mapping[str, str],
        validators: Validators | None,
        sink: BodySink,
    ) -> Fetched | None:
        trusted = origin is not None and same_origin(url, origin)
        for _ in range(self.policy.max_redirects + 1):
            target = url if trusted else self.check_url_source(url)
            sent = dict(headers) if trusted else {}
            if validators is not None:
                if validators.etag:
                    sent["If-None-Match"] = validators.etag
                if validators.last_modified:
                    sent["If-Modified-Since"] = validators.last_modified
            session = self._trusted if trusted else self._guarded
            async with self._slots.slot((target.scheme, target.raw_host, target.port)):
                outcome = await self._request(session, target, sent, validators, sink)
            if not isinstance(outcome, URL):
                return outcome
            trusted = keeps_trust(url, outcome, trusted=trusted, origin=origin)
            url = outcome
        raise BadGateway(f"the origin redirected more than {self.policy.max_redirects} times")

    async def _request(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        headers: Mapping[str, str],
        validators: Validators | None,
        sink: BodySink,
    ) -> Fetched | URL | None:
        """One request: the body fetched, None (not modified), or where it redirects."""
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                status = response.status
                if status in _REDIRECTS:
                    return _redirect_target(url, response.headers.get("Location"))
                if status == 304 and validators is not None:
                    return None
                if status in (404, 410):
                    raise NotFound()
                if status != 200:
                    raise BadGateway(f"the origin answered {status}")
                return await _body(response, sink)
        except AddressRefused as refusal:
            raise Forbidden(refusal.message) from None
        except aiohttp.ClientConnectorDNSError:
            raise BadGateway(f"cannot resolve the origin's host {url.raw_host}") from None
        except aiohttp.ClientConnectorError:
            raise BadGateway(f"cannot connect to the origin {url.raw_host}:{url.port}") from None
        except aiohttp.ClientPayloadError:
            raise TruncatedBody("the origin's body is truncated") from None
        except aiohttp.ServerTimeoutError:
            raise OriginTimeout("the origin did not answer in time") from None
        except aiohttp.ClientError as error:
            raise BadGateway(f"the origin failed: {type(error).__name__}") from None


async def _body(response: aiohttp.ClientResponse, sink: BodySink) -> Fetched:
    """A 200's body, through the sink, and what names it."""
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise UnprocessableImage("the origin sent a compressed body, not an image")
    validators = Validators(
        etag=_validator(response.headers.get("ETag")),
        last_modified=_validator(response.headers.get("Last-Modified")),
    )
    length = response.content_length
    sink.expect_length(length)
    if validators.etag or validators.last_modified:
        sink.named_by_origin()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        sink.write(chunk)
    size = sink.finish(length)
    return Fetched(_identity(validators, size, sink), validators, size)


def keeps_trust(current: URL, target: URL, *, trusted: bool, origin: URL | None) -> bool:
    """Whether a redirect hop from ``current`` to ``target`` stays with the
    configured ``origin`` (and so keeps its trust and headers); Forbidden
    for a hop from https to http, whoever asks for it."""
    if current.scheme == "https" and target.scheme == "http":
        raise Forbidden("the origin redirected from https to http")
    return trusted and origin is not None and same_origin(target, origin)


def _redirect_target(url: URL, location: str | None) -> URL:
    if not location:
        raise BadGateway("the origin redirected without a Location")
    try:
        target = url.join(URL(location))
        host = target.raw_host
    except ValueError:  # UnicodeError included: an IDNA label that does not decode
        raise BadGateway("the origin redirected to an invalid URL") from None
    if target.scheme not in ("http", "https") or not host:
        raise Forbidden("the origin redirected to a URL that is not http or https")
    if target.user or target.password:
        # aiohttp would send them as Basic credentials, to wherever it points.
        raise Forbidden("the origin redirected to a URL with credentials")
    return target


def _identity(validators: Validators, size: int, sink: BodySink) -> str:
    """What keys the renders of this body: the ETag, else Last-Modified,
    each with the length (a weak ETag promises equivalence, not bytes),
    else the body's own digest."""
    if validators.etag:
        return f"etag:{validators.etag}:{size}"
    if validators.last_modified:
        return f"lm:{validators.last_modified}:{size}"
    return f"sha256:{sink.digest}"


def _validator(value: str | None) -> str | None:
    """A validator as sent, unless it is not plain printable ASCII (as HTTP
    defines them): such a one is not trusted to name anything."""
    if value is None or len(value) > _MAX_VALIDATOR or not _PRINTABLE.fullmatch(value):
        return None
    return value


def origin_url(prefix: URL, key: str) -> URL:
    """The URL of ``key`` under an origin prefix, each segment percent-encoded."""
    return prefix.join(URL.build(path="/".join(_quote(s) for s in key.split("/")), encoded=True))


def _quote(segment: str) -> str:
    return quote(segment, safe="")


class HttpOrigin:
    """A configured HTTP(S) origin: ``key`` is read from ``prefix/key``."""

    def __init__(
        self,
        name: str,
        prefix: URL,
        fetcher: HttpFetcher,
        headers: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.name = name
        self.trusted = True
        self.prefix = prefix
        self._fetcher = fetcher
        self._headers = headers  # read per request: a rotated token applies at once

    async def fetch(
        self, key: str, validators: Validators | None, sink: BodySink
    ) -> Fetched | None:
        return await self._fetcher.get(
            origin_url(self.prefix, key),
            origin=self.prefix,
            headers=self._headers(),
            validators=validators,
            sink=sink,
        )

    async def close(self) -> None:
        """The fetcher is shared, and closed by its owner."""


class UrlSources:
    """``?url=`` sources: ``key`` is the absolute URL, fetched untrusted."""

    name = URL_SOURCES
    trusted = False

    def __init__(self, fetcher: HttpFetcher) -> None:
        self._fetcher = fetcher

    async def fetch(
        self, key: str, validators: Validators | None, sink: BodySink
    ) -> Fetched | None:
        return await self._fetcher.get(
            URL(key, encoded=True), origin=None, headers={}, validators=validators, sink=sink
        )

    async def close(self) -> None:
        """The fetcher is shared, and closed by its owner."""
