"""Originals from an HTTP origin: a real aiohttp origin on loopback, the real service."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from service.origins.addresses import parse_networks
from service.origins.config import parse_named_origin, parse_origin_header
from service.origins.hosts import HostPatterns
from service.server.app import create_app
from service.settings import Settings

from .conftest import SAMPLES, Client, MakeClient, decode, fill
from .origin_server import Origin
from .rawhttp import raw_request
from .serving import free_port
from .waiting import eventually_async

PHOTO = "rocket.jpg"


async def serve(aiohttp_client: MakeClient, settings: Settings, **overrides: object) -> Client:
    return await aiohttp_client(create_app(replace(settings, **overrides)))  # type: ignore[arg-type]


async def test_a_remote_original_is_rendered(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """/picture/<path> reads <prefix>/<path> from the origin and renders it."""
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get(f"/picture/files/{PHOTO}?w=120&format=png")
    assert response.status == 200
    assert response.headers["X-Cache"] == "MISS"
    assert decode(await response.read()).width == 120
    assert origin.log.paths() == [f"/files/{PHOTO}"]


async def test_origin_requests_say_who_we_are_and_take_no_encoding(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """The origin sees our User-Agent and Accept-Encoding: identity."""
    client = await serve(aiohttp_client, remote_settings)
    assert (await client.get(f"/picture/files/{PHOTO}?w=50")).status == 200
    _, headers = origin.log.requests[0]
    assert re.fullmatch(r"image-factory/\S+", headers["User-Agent"])
    assert headers["Accept-Encoding"] == "identity"


async def test_a_clients_cookie_and_authorization_are_never_forwarded(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Neither Cookie nor Authorization (nor any client header) reaches the origin."""
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get(
        f"/picture/files/{PHOTO}?w=50",
        headers={"Cookie": "session=secret", "Authorization": "Bearer mine", "X-Other": "1"},
    )
    assert response.status == 200
    _, headers = origin.log.requests[0]
    assert "Cookie" not in headers
    assert "Authorization" not in headers
    assert "X-Other" not in headers


async def test_variants_of_one_original_download_it_once(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Different variants of one original share one download."""
    client = await serve(aiohttp_client, remote_settings)
    for width in (40, 60, 80):
        assert (await client.get(f"/picture/files/{PHOTO}?w={width}")).status == 200
    assert origin.log.count(f"/files/{PHOTO}") == 1


async def test_within_the_ttl_a_hit_and_a_304_cost_no_origin_request(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Within --source-ttl a cache hit and a conditional request ask nothing of the origin."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=3600.0)
    first = await client.get(f"/picture/files/{PHOTO}?w=64")
    etag = first.headers["ETag"]
    hit = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert hit.headers["X-Cache"] == "HIT"
    not_modified = await client.get(f"/picture/files/{PHOTO}?w=64", headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert len(origin.log.requests) == 1


async def test_after_the_ttl_an_unchanged_original_keeps_its_variants(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Past the TTL a conditional request revalidates; a 304 keeps the cached variant."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=0.0)
    first = await client.get(f"/picture/files/{PHOTO}?w=64")
    second = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert len(origin.log.requests) == 2
    _, revalidation = origin.log.requests[1]
    assert revalidation["If-None-Match"]
    metrics = await (await client.get("/metrics")).text()
    assert 'image_factory_source_revalidations_total{outcome="unchanged"} 1.0' in metrics


async def test_after_the_ttl_a_changed_original_makes_new_variants(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A changed original at its origin gets a new ETag and a fresh render."""
    shutil.copy(origin.root / "retina.jpg", origin.root / "target.jpg")
    client = await serve(aiohttp_client, remote_settings, source_ttl=0.0)
    first = await client.get("/picture/files/target.jpg?w=64&format=png")
    shutil.copy(origin.root / PHOTO, origin.root / "target.jpg")
    second = await client.get("/picture/files/target.jpg?w=64&format=png")
    assert second.status == 200
    assert second.headers["X-Cache"] == "MISS"
    assert second.headers["ETag"] != first.headers["ETag"]
    assert await second.read() != await first.read()


async def test_a_failing_origin_leaves_cached_variants_served(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Stale-if-error: when revalidation fails, variants already cached are served and counted."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=0.0)
    first = await client.get(f"/picture/files/{PHOTO}?w=64")
    origin.failing = True
    stale = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert stale.status == 200
    assert stale.headers["ETag"] == first.headers["ETag"]
    metrics = await (await client.get("/metrics")).text()
    assert "image_factory_source_stale_served_total 1.0" in metrics
    assert 'image_factory_source_revalidations_total{outcome="failed"} 1.0' in metrics


async def test_past_stale_if_error_a_failing_origin_is_a_502(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Beyond --source-stale-if-error the origin's failure is the answer."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=0.0, source_stale_if_error=0.0)
    assert (await client.get(f"/picture/files/{PHOTO}?w=64")).status == 200
    origin.failing = True
    response = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert response.status == 502
    assert response.headers["Cache-Control"] == "no-store"


async def test_an_origin_404_is_a_404_remembered_for_a_while(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """An origin's 404 is ours, and within --source-negative-ttl it is not asked again."""
    client = await serve(aiohttp_client, remote_settings, source_negative_ttl=3600.0)
    for _ in range(3):
        assert (await client.get("/picture/files/missing.jpg?w=64")).status == 404
    assert origin.log.count("/files/missing.jpg") == 1


@pytest.mark.parametrize(("code", "status"), [(410, 404), (500, 502), (403, 502), (503, 502)])
async def test_origin_statuses_map_to_ours(
    aiohttp_client: MakeClient, remote_settings: Settings, code: int, status: int
) -> None:
    """410 is a 404; any other origin failure is a 502, never cached by a CDN."""
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get(f"/picture/status/{code}/{PHOTO}?w=64")
    assert response.status == status
    body = await response.json()
    assert "\n" not in body["error"]
    if status >= 500:
        assert response.headers["Cache-Control"] == "no-store"


async def test_redirects_within_the_limit_are_followed(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A chain of same-origin redirects up to --origin-max-redirects is followed."""
    client = await serve(aiohttp_client, remote_settings, origin_max_redirects=3)
    assert (await client.get(f"/picture/redirect/3/{PHOTO}?w=64")).status == 200
    assert origin.log.count(f"/files/{PHOTO}") == 1


async def test_redirects_past_the_limit_are_refused(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """One hop more than --origin-max-redirects is a 502, and the file is never asked for."""
    client = await serve(aiohttp_client, remote_settings, origin_max_redirects=2)
    response = await client.get(f"/picture/redirect/3/{PHOTO}?w=64")
    assert response.status == 502
    assert origin.log.count(f"/files/{PHOTO}") == 0


async def test_a_redirect_off_the_origin_is_refused_without_url_sources(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A hop to another host that --url-sources does not allow is a 403, and is not followed."""
    client = await serve(aiohttp_client, remote_settings)
    origin.away = origin.url(f"/files/{PHOTO}").replace("127.0.0.1", "localhost")
    response = await client.get(f"/picture/away/{PHOTO}?w=64")
    assert response.status == 403
    assert origin.log.count(f"/files/{PHOTO}") == 0


async def test_a_trickling_body_is_cut_at_the_origin_timeout(
    aiohttp_client: MakeClient, remote_settings: Settings
) -> None:
    """A body that trickles is a 504 once --origin-timeout has passed, whatever still comes."""
    client = await serve(aiohttp_client, remote_settings, origin_timeout=1.0)
    response = await client.get(f"/picture/trickle/{PHOTO}?w=64")
    assert response.status == 504
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_body_shorter_than_its_length_is_refused_and_not_kept(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A lying Content-Length is a 422 (truncated), and nothing of it is cached."""
    client = await serve(aiohttp_client, remote_settings)
    for _ in range(2):
        response = await client.get(f"/picture/lying/{PHOTO}?w=64")
        assert response.status == 422
        assert "truncated" in (await response.json())["error"]
    assert origin.log.count(f"/lying/{PHOTO}") == 2


@pytest.mark.parametrize("route", ["gzip", "gzfile"])
async def test_a_compressed_body_is_refused_not_inflated(
    aiohttp_client: MakeClient, remote_settings: Settings, route: str
) -> None:
    """A gzip body (with or without Content-Encoding) is a 422: nothing is decompressed."""
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get(f"/picture/{route}/{PHOTO}?w=64")
    assert response.status == 422
    assert "compressed" in (await response.json())["error"]


async def test_a_body_that_is_no_image_is_refused(
    aiohttp_client: MakeClient, remote_settings: Settings
) -> None:
    """A text body is a 422 from its first bytes."""
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get("/picture/files/notes.txt?w=64")
    assert response.status == 422


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    aiohttp_client: MakeClient, remote_settings: Settings
) -> None:
    """A Content-Length over --max-source-bytes is a 422 without reading the body."""
    client = await serve(aiohttp_client, remote_settings, max_source_bytes=10**6)
    response = await client.get(f"/picture/huge/{PHOTO}?w=64")
    assert response.status == 422
    assert "over the limit" in (await response.json())["error"]


async def test_an_endless_body_is_cut_at_the_byte_limit(
    aiohttp_client: MakeClient, remote_settings: Settings
) -> None:
    """A chunked body without end is a 422 once the bytes received pass --max-source-bytes."""
    client = await serve(aiohttp_client, remote_settings, max_source_bytes=10**6)
    response = await client.get(f"/picture/endless/{PHOTO}?w=64")
    assert response.status == 422
    assert "over the limit" in (await response.json())["error"]


@pytest.mark.parametrize(
    "path",
    [
        "files/..%2Fsecret.jpg",
        "files/.hidden.jpg",
        "files/%2e%2e/x.jpg",
        "files/../x.jpg",
        "files//x.jpg",
        "files/%2E%2E%2Fx.jpg",
    ],
)
async def test_paths_that_leave_the_prefix_are_refused_before_any_request(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin, path: str
) -> None:
    """.., hidden and empty segments, however encoded, are a 404 before the origin is asked."""
    client = await serve(aiohttp_client, remote_settings)
    assert client.port is not None
    # Sent as written: an HTTP client would resolve the dots itself.
    response = await raw_request("127.0.0.1", client.port, f"/picture/{path}?w=64")
    assert response.status == 404
    assert origin.log.requests == []


async def test_path_segments_are_percent_encoded_for_the_origin(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A space or a '?' in a name reaches the origin encoded, as part of the path."""
    shutil.copy(origin.root / PHOTO, origin.root / "a b?c.jpg")
    client = await serve(aiohttp_client, remote_settings)
    response = await client.get("/picture/files/a%20b%3Fc.jpg?w=64")
    assert response.status == 200
    assert origin.log.paths() == ["/files/a%20b%3Fc.jpg"]


async def test_concurrent_requests_for_one_original_make_one_download(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Eight requests for variants of one original while it downloads share one origin request."""
    client = await serve(aiohttp_client, remote_settings)
    origin.hold = asyncio.Event()
    requests = [
        asyncio.ensure_future(client.get(f"/picture/files/{PHOTO}?w={40 + i}")) for i in range(8)
    ]
    await eventually_async(lambda: bool(origin.log.requests), 10, message="no origin request")
    origin.hold.set()
    responses = await asyncio.gather(*requests)
    assert [r.status for r in responses] == [200] * 8
    assert origin.log.count(f"/files/{PHOTO}") == 1


async def test_configured_headers_reach_the_origin_and_rotate_with_their_file(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin, tmp_path: Path
) -> None:
    """--origin-header values are sent to the origin; an @FILE value follows the file."""
    token = tmp_path / "token"
    token.write_text("first\n")
    headers = (
        parse_origin_header("default=X-Api-Key: fixed"),
        parse_origin_header(f"default=Authorization: @{token}"),
    )
    client = await serve(aiohttp_client, remote_settings, origin_headers=headers, source_ttl=0.0)
    assert (await client.get(f"/picture/files/{PHOTO}?w=64")).status == 200
    token.write_text("second\n")
    os.utime(token, ns=(1, 1))  # a new mtime whatever the clock's resolution
    assert (await client.get(f"/picture/files/{PHOTO}?w=64")).status == 200
    sent = [(h["X-Api-Key"], h["Authorization"]) for _, h in origin.log.requests]
    assert sent == [("fixed", "first"), ("fixed", "second")]


async def test_a_refused_origin_is_a_502_and_nothing_is_cached(
    aiohttp_client: MakeClient, remote_settings: Settings, tmp_path: Path
) -> None:
    """A connection refused by the origin's port is a 502 with no-store."""
    settings = replace(remote_settings, originals=f"http://127.0.0.1:{free_port()}/")
    client = await aiohttp_client(create_app(settings))
    response = await client.get(f"/picture/{PHOTO}?w=64")
    assert response.status == 502
    assert response.headers["Cache-Control"] == "no-store"


async def test_named_origins_read_their_own_paths(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin, tmp_path: Path
) -> None:
    """/picture/NAME/... reads from that origin; other paths 404 unless --originals is given."""
    named = (parse_named_origin(f"cms={origin.url('/files/')}"),)
    client = await serve(aiohttp_client, remote_settings, origins=named, originals_given=False)
    assert (await client.get(f"/picture/cms/{PHOTO}?w=64")).status == 200
    assert (await client.get(f"/picture/{PHOTO}?w=64")).status == 404
    assert origin.log.paths() == [f"/files/{PHOTO}"]
    local = await serve(
        aiohttp_client,
        remote_settings,
        origins=named,
        originals=str(SAMPLES),
        originals_given=True,
    )
    assert (await local.get(f"/picture/{PHOTO}?w=64")).status == 200


async def test_origin_metrics_count_requests_bytes_and_cache(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """/metrics counts origin requests by outcome, the bytes, and source-cache hits and misses."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=3600.0)
    await client.get(f"/picture/files/{PHOTO}?w=64")
    await client.get(f"/picture/files/{PHOTO}?w=65")
    await client.get("/picture/files/missing.jpg?w=64")
    metrics = await (await client.get("/metrics")).text()
    size = (origin.root / PHOTO).stat().st_size
    assert 'image_factory_origin_requests_total{origin="default",outcome="fetched"} 1.0' in metrics
    assert (
        'image_factory_origin_requests_total{origin="default",outcome="not_found"} 1.0' in metrics
    )
    assert f'image_factory_origin_bytes_total{{origin="default"}} {float(size)}' in metrics
    assert 'image_factory_source_cache_total{result="hit"} 1.0' in metrics
    assert 'image_factory_source_cache_total{result="miss"} 2.0' in metrics


async def test_a_redirect_to_a_url_with_credentials_is_refused(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A hop to a URL carrying user:password is a 403, and not followed."""
    client = await serve(aiohttp_client, remote_settings)
    origin.away = origin.url(f"/files/{PHOTO}").replace("http://", "http://user:secret@")
    response = await client.get(f"/picture/away/{PHOTO}?w=64")
    assert response.status == 403
    assert origin.log.count(f"/files/{PHOTO}") == 0


async def test_downloads_waiting_for_a_busy_host_are_bounded(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """Past --origin-concurrency a download waits; past --queue waiting, it is a 503."""
    for name in ("one.jpg", "two.jpg", "three.jpg"):
        shutil.copy(origin.root / PHOTO, origin.root / name)
    client = await serve(aiohttp_client, remote_settings, origin_concurrency=1, queue=1)
    origin.hold = asyncio.Event()
    first = asyncio.ensure_future(client.get("/picture/files/one.jpg?w=64"))
    await eventually_async(lambda: bool(origin.log.requests), 10, message="no origin request")
    second = asyncio.ensure_future(client.get("/picture/files/two.jpg?w=64"))

    async def waiting() -> str:
        return await (await client.get("/metrics")).text()

    waiting_line = "image_factory_origin_downloads_waiting 1.0"
    for _ in range(500):  # each round trips through the service: no fixed sleep
        if waiting_line in await waiting():
            break
    assert waiting_line in await waiting()
    third = await client.get("/picture/files/three.jpg?w=64")
    assert third.status == 503
    assert third.headers["Retry-After"] == "1"
    origin.hold.set()
    assert (await first).status == 200
    assert (await second).status == 200


async def test_a_full_source_cache_volume_is_a_503_not_a_500(
    aiohttp_client: MakeClient, remote_settings: Settings, tiny_filesystem: Path
) -> None:
    """With no room for a download, the answer is a 503 with a reason; nothing breaks."""
    sources = tiny_filesystem / "sources"
    client = await serve(aiohttp_client, remote_settings, source_cache_dir=str(sources))
    fill(tiny_filesystem / "filler")
    response = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert response.status == 503
    assert "source cache" in (await response.json())["error"]


async def test_an_origins_headers_never_follow_a_redirect_off_it(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """An allowed hop to another host is fetched without the origin's configured headers."""
    client = await serve(
        aiohttp_client,
        remote_settings,
        origin_headers=(parse_origin_header("default=X-Api-Key: secret"),),
        url_sources=HostPatterns.parse(f"localhost:{origin.server.port}"),
        url_sources_allow_networks=parse_networks("127.0.0.1/32"),
    )
    origin.away = origin.url(f"/files/{PHOTO}").replace("127.0.0.1", "localhost")
    response = await client.get(f"/picture/away/{PHOTO}?w=64")
    assert response.status == 200
    (first_path, first), (second_path, second) = origin.log.requests
    assert (first_path, first["X-Api-Key"]) == (f"/away/{PHOTO}", "secret")
    assert second_path == f"/files/{PHOTO}"
    assert second["Host"].startswith("localhost:")
    assert "X-Api-Key" not in second


async def test_validators_that_are_not_ascii_are_not_trusted(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A non-ASCII ETag or Last-Modified is no 500: the body's digest names it instead."""
    client = await serve(aiohttp_client, remote_settings)
    for _ in range(3):
        response = await client.get(f"/picture/odd/{PHOTO}?w=64")
        assert response.status == 200
    assert origin.log.count(f"/odd/{PHOTO}") == 1


async def test_a_revalidation_cut_short_serves_the_copy_held(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A revalidation whose body ends early is an origin failure: stale-if-error applies."""
    client = await serve(aiohttp_client, remote_settings, source_ttl=0.0)
    first = await client.get(f"/picture/files/{PHOTO}?w=64")
    origin.truncating = True
    stale = await client.get(f"/picture/files/{PHOTO}?w=64")
    assert stale.status == 200
    assert stale.headers["ETag"] == first.headers["ETag"]


async def test_svg_from_a_url_source_is_refused_even_with_svg_on(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """--enable-svg trusts the operator's origins only: a URL source's SVG is a 422."""
    (origin.root / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    )
    client = await serve(
        aiohttp_client,
        remote_settings,
        enable_svg=True,
        url_sources=HostPatterns.parse(f"127.0.0.1:{origin.server.port}"),
        url_sources_allow_networks=parse_networks("127.0.0.1/32"),
    )
    assert (await client.get("/picture/files/logo.svg?w=8")).status == 200
    response = await client.get("/picture", params={"url": origin.url("/files/logo.svg")})
    assert response.status == 422


async def test_a_remote_originals_outputs_are_keyed_without_its_body(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin, tmp_path: Path
) -> None:
    """Widths past a remote original's are one entry, as for a local one;
    its header facts are noted beside its body, so that after a restart a
    result hit needs neither the body (removed here) nor the origin."""
    settings = replace(remote_settings, source_ttl=3600.0)
    client = await serve(aiohttp_client, settings)
    before = await client.get(f"/picture/files/{PHOTO}?w=2000")
    assert before.status == 200
    again = await client.get(f"/picture/files/{PHOTO}?w=4000&format=jpeg")
    assert again.headers["X-Cache"] == "HIT"
    assert again.headers["ETag"] == before.headers["ETag"]
    await client.close()
    bodies = list((tmp_path / "cache" / "sources" / "objects").glob("*/b*"))
    assert len(bodies) == 1
    bodies[0].unlink()
    restarted = await serve(aiohttp_client, settings)
    hit = await restarted.get(f"/picture/files/{PHOTO}?w=3000")
    assert hit.status == 200
    assert hit.headers["X-Cache"] == "HIT"
    assert origin.log.count(f"/files/{PHOTO}") == 1
