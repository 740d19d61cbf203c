"""?url= sources and the SSRF rules: end to end on loopback, and through a
resolver stub and a connection layer that records instead of connecting."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from service.errors import BadGateway, Forbidden
from service.origins.addresses import parse_networks
from service.origins.body import BodySink
from service.origins.hosts import HostPatterns
from service.origins.http import FetchPolicy, HttpFetcher, keeps_trust
from service.server.app import create_app
from service.settings import Settings
from service.signing import sign_url

from .conftest import SAMPLES, Client, MakeClient, decode
from .origin_server import Origin

PHOTO = "rocket.jpg"


@pytest.fixture
def url_settings(tmp_path: Path) -> Settings:
    return Settings(
        originals=str(SAMPLES),
        cache_dir=str(tmp_path / "cache"),
        concurrency=2,
        origin_timeout=2.0,
        origin_connect_timeout=1.0,
    )


async def serve(aiohttp_client: MakeClient, settings: Settings, **overrides: object) -> Client:
    return await aiohttp_client(create_app(replace(settings, **overrides)))  # type: ignore[arg-type]


def loopback_allowed(origin: Origin) -> dict[str, object]:
    """URL sources opened to the test origin's own address, as for an internal origin."""
    return {
        "url_sources": HostPatterns.parse(f"127.0.0.1:{origin.server.port}"),
        "url_sources_allow_networks": parse_networks("127.0.0.1/32"),
    }


async def test_url_sources_are_off_by_default(
    aiohttp_client: MakeClient, url_settings: Settings
) -> None:
    """Without --url-sources, /picture?url= is a 404."""
    client = await serve(aiohttp_client, url_settings)
    response = await client.get("/picture", params={"url": "http://example.com/a.jpg"})
    assert response.status == 404


async def test_an_allowed_url_source_is_rendered(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin
) -> None:
    """An allowed host on an allowed network is fetched and rendered."""
    client = await serve(aiohttp_client, url_settings, **loopback_allowed(origin))
    response = await client.get(
        "/picture", params={"url": origin.url(f"/files/{PHOTO}"), "w": "64"}
    )
    assert response.status == 200
    assert origin.log.paths() == [f"/files/{PHOTO}"]


async def test_a_host_no_pattern_allows_is_a_403_before_any_request(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin
) -> None:
    """A host no --url-sources pattern allows is refused without a lookup or a connection."""
    client = await serve(
        aiohttp_client,
        url_settings,
        url_sources=HostPatterns.parse("images.example.com"),
        url_sources_allow_networks=parse_networks("127.0.0.1/32"),
    )
    response = await client.get("/picture", params={"url": origin.url(f"/files/{PHOTO}")})
    assert response.status == 403
    assert origin.log.requests == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "127.0.0.1.",
        "127.5.6.7",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
        "localhost.",
        "LOCALHOST",
    ],
)
async def test_loopback_in_every_spelling_is_refused(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin, host: str
) -> None:
    """Loopback, however it is spelled, is a 403 naming the rule, and the origin is never asked."""
    client = await serve(aiohttp_client, url_settings, url_sources=HostPatterns.parse("*"))
    url = f"http://{host}:{origin.server.port}/files/{PHOTO}"
    response = await client.get("/picture", params={"url": url, "w": "64"})
    reason = (await response.json())["error"]
    if response.status == 502:
        # A resolver that knows no such name (glibc and "localhost."): nothing to connect to.
        assert reason.startswith("cannot resolve"), reason
    else:
        assert response.status == 403
        assert "loopback" in reason or "IPv4-mapped" in reason
    assert origin.log.requests == []
    metrics = await (await client.get("/metrics")).text()
    refusals = 1.0 if response.status == 403 else 0.0
    assert f"image_factory_ssrf_refusals_total {refusals}" in metrics


async def test_a_redirect_to_a_refused_host_is_not_followed(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin
) -> None:
    """A URL source's redirect is checked again: to a host no pattern allows, a 403."""
    client = await serve(aiohttp_client, url_settings, **loopback_allowed(origin))
    origin.away = f"http://localhost:{origin.server.port}/files/{PHOTO}"
    response = await client.get("/picture", params={"url": origin.url(f"/away/{PHOTO}")})
    assert response.status == 403
    assert origin.log.count(f"/files/{PHOTO}") == 0


async def test_the_signature_covers_the_url(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin
) -> None:
    """With signing on, an unsigned or altered url is a 403 and a signed one is served."""
    client = await serve(
        aiohttp_client, url_settings, signing_keys=("secret",), **loopback_allowed(origin)
    )
    target = URL.build(path="/picture", query={"url": origin.url(f"/files/{PHOTO}"), "w": "64"})
    signed = sign_url(str(target), "secret")
    assert (await client.get(str(target))).status == 403
    assert (await client.get(signed.replace("rocket", "rocker"))).status == 403
    assert (await client.get(signed)).status == 200


@pytest.mark.parametrize(
    "query",
    [
        {"url": "/relative/a.jpg"},
        {"url": "ftp://127.0.0.1/a.jpg"},
        {"url": "file:///etc/passwd"},
        {"url": ""},
    ],
)
async def test_a_url_that_is_not_absolute_http_is_a_400(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin, query: dict[str, str]
) -> None:
    """url must be one absolute http or https URL."""
    client = await serve(aiohttp_client, url_settings, url_sources=HostPatterns.parse("*"))
    response = await client.get("/picture", params=query)
    assert response.status == 400


async def test_url_given_twice_is_a_400(aiohttp_client: MakeClient, url_settings: Settings) -> None:
    """Two url parameters are ambiguous: a 400."""
    client = await serve(aiohttp_client, url_settings, url_sources=HostPatterns.parse("*"))
    response = await client.get("/picture?url=http://a.example/x.jpg&url=http://b.example/y.jpg")
    assert response.status == 400


def test_a_redirect_from_https_to_http_is_refused() -> None:
    """https to http is refused whoever redirects; same-origin hops keep trust, others lose it."""
    origin = URL("https://cms.internal/")
    with pytest.raises(Forbidden):
        keeps_trust(
            URL("https://cms.internal/a"), URL("http://cms.internal/a"), trusted=True, origin=origin
        )
    assert keeps_trust(
        URL("https://cms.internal/a"), URL("https://cms.internal/b"), trusted=True, origin=origin
    )
    assert not keeps_trust(
        URL("https://cms.internal/a"), URL("https://cdn.example/b"), trusted=True, origin=origin
    )
    assert not keeps_trust(
        URL("https://cdn.example/b"), URL("https://cms.internal/c"), trusted=False, origin=origin
    )


# -- a resolver stub and a connection layer that never connects ------------


class StubResolver(AbstractResolver):
    """Resolves names from a table, as a hostile DNS server would answer."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


class RecordingConnector(aiohttp.TCPConnector):
    """Records each connection attempt's addresses instead of opening a socket."""

    attempts: list[list[str]]

    async def _wrap_create_connection(
        self,
        *args: object,
        addr_infos: list[tuple[Any, ...]],
        req: aiohttp.ClientRequest,
        **kwargs: object,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        self.attempts.append([info[4][0] for info in addr_infos])
        raise aiohttp.ClientConnectorError(req.connection_key, OSError(111, "recorded, not opened"))


async def fetch_through_stubs(
    tmp_path: Path, url: str, table: dict[str, list[str]], *, allow: str = ""
) -> tuple[BaseException, list[list[str]]]:
    attempts: list[list[str]] = []

    def connector(*, resolver: AbstractResolver, socket_factory: object) -> aiohttp.BaseConnector:
        recording = RecordingConnector(resolver=resolver, limit=0)
        recording.attempts = attempts
        return recording

    fetcher = HttpFetcher(
        FetchPolicy(
            url_sources=HostPatterns.parse("*"),
            allowed_networks=parse_networks(allow) if allow else (),
        ),
        connector=connector,
        resolver=StubResolver(table),
    )
    descriptor = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT)
    sink = BodySink(descriptor, max_bytes=10**6)
    try:
        await fetcher.get(URL(url), origin=None, headers={}, validators=None, sink=sink)
    except (Forbidden, BadGateway) as error:
        return error, attempts
    finally:
        os.close(descriptor)
        await fetcher.close()
    raise AssertionError("the fetch succeeded")


REFUSED_BY_DNS = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.169.254",
    "169.254.1.1",
    "100.100.100.200",
    "168.63.129.16",
    "0.0.0.0",  # noqa: S104 - an address the guard refuses, nothing binds it
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "::",
    "::1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:db8::1",
]


@pytest.mark.parametrize("address", REFUSED_BY_DNS)
async def test_a_name_resolving_to_a_refused_range_is_never_connected_to(
    tmp_path: Path, address: str
) -> None:
    """A name a resolver maps into a refused range is a 403, and no connection is attempted."""
    error, attempts = await fetch_through_stubs(
        tmp_path, "http://evil.test/a.jpg", {"evil.test": [address]}
    )
    assert isinstance(error, Forbidden), error
    assert attempts == []


async def test_one_refused_address_among_public_ones_refuses_the_name(tmp_path: Path) -> None:
    """A rebinding answer mixing a public and a private address is refused whole."""
    error, attempts = await fetch_through_stubs(
        tmp_path, "http://mixed.test/a.jpg", {"mixed.test": ["93.184.216.34", "10.0.0.1"]}
    )
    assert isinstance(error, Forbidden)
    assert attempts == []


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "100.64.0.1", "169.254.169.254", "[fd00:ec2::254]"]
)
async def test_an_ip_literal_in_a_refused_range_is_never_connected_to(
    tmp_path: Path, address: str
) -> None:
    """A URL naming a refused address directly is refused before any connection."""
    error, attempts = await fetch_through_stubs(tmp_path, f"http://{address}/a.jpg", {})
    assert isinstance(error, Forbidden)
    assert attempts == []


async def test_the_recorder_does_record_an_allowed_connection(tmp_path: Path) -> None:
    """The control: a name resolving into an allowed network is attempted, at that address."""
    error, attempts = await fetch_through_stubs(
        tmp_path, "http://fine.test/a.jpg", {"fine.test": ["10.9.8.7"]}, allow="10.9.8.0/24"
    )
    assert isinstance(error, BadGateway)
    assert attempts == [["10.9.8.7"]]


async def test_an_allow_list_never_opens_the_metadata_endpoint(tmp_path: Path) -> None:
    """--url-sources-allow-networks 169.254.0.0/16 still refuses 169.254.169.254."""
    error, attempts = await fetch_through_stubs(
        tmp_path,
        "http://meta.test/latest",
        {"meta.test": ["169.254.169.254"]},
        allow="169.254.0.0/16",
    )
    assert isinstance(error, Forbidden)
    assert attempts == []


@pytest.mark.parametrize(
    "url", ["http://xn--/a.jpg", "http://xn--a.xn--b/a.jpg", "http://[::ffff:1.2.3]/a.jpg"]
)
async def test_hosts_that_do_not_decode_are_refused_not_crashed(
    aiohttp_client: MakeClient, url_settings: Settings, url: str
) -> None:
    """Malformed IDNA or IPv6 hosts are refused or unresolvable, never a 500."""
    client = await serve(aiohttp_client, url_settings, url_sources=HostPatterns.parse("*"))
    response = await client.get("/picture", params={"url": url})
    assert response.status in (400, 403, 502)
    assert "\n" not in (await response.json())["error"]


async def test_a_url_sources_srcset_names_picture_urls_of_it(
    aiohttp_client: MakeClient, url_settings: Settings, origin: Origin
) -> None:
    """/srcset?url= lists /picture?url= candidates, each of the width it says."""
    client = await serve(aiohttp_client, url_settings, **loopback_allowed(origin))
    source = origin.url(f"/files/{PHOTO}")  # 640 px wide
    response = await client.get("/srcset", params={"url": source, "format": "webp"})
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert [c["width"] for c in answer["candidates"]] == [320, 640]
    for candidate in answer["candidates"]:
        assert candidate["url"].startswith("/picture?w=")
        picture = await client.get(candidate["url"])
        assert picture.status == 200
        assert decode(await picture.read()).width == candidate["width"]
    assert origin.log.count(f"/files/{PHOTO}") == 1
