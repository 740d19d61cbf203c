"""Purging originals (service/purge.py): POST /admin/purge, image-factory
purge, the CDN tags and stale directives of image responses. A real app on
loopback, a real disk cache, a real HTTP origin for remote originals."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.cli import main
from service.origins.addresses import parse_networks
from service.origins.config import parse_named_origin
from service.origins.hosts import HostPatterns
from service.purge import PurgeTarget, cdn_tag
from service.purge_stamp import PurgeStamp
from service.server.app import create_app
from service.settings import Settings, SettingsError

from .conftest import SAMPLES, Client, MakeClient
from .origin_server import Origin

TOKEN = "a-test-token-of-32-characters-00"  # noqa: S105 - a test's own token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = "rocket.jpg"


async def post_purge(client: Client, body: object, headers: dict[str, str] = AUTH) -> object:
    response = await client.post("/admin/purge", json=body, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    return await response.json()


async def cache_status(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    await response.read()
    return response.headers["X-Cache"]


# -- the endpoint and its token --------------------------------------------


async def test_without_an_admin_token_there_is_no_endpoint(client: Client) -> None:
    """Every method of /admin/purge is a 404 when --admin-token is unset."""
    for method in ("POST", "GET", "DELETE"):
        response = await client.request(method, "/admin/purge", json={"path": PHOTO}, headers=AUTH)
        assert response.status == 404
        assert (await response.json())["error"] == "no such endpoint"


async def test_no_token_is_a_401_that_asks_for_a_bearer(make_client: MakeClient) -> None:
    """No Authorization (or another scheme): 401 with WWW-Authenticate: Bearer."""
    client = await make_client(admin_token=TOKEN)
    for headers in ({}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}):
        response = await client.post("/admin/purge", json={"path": PHOTO}, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_wrong_token_is_a_403(make_client: MakeClient) -> None:
    """Another token, a prefix of it, or a longer one: 403, nothing purged."""
    client = await make_client(admin_token=TOKEN)
    assert await cache_status(client, f"/picture/{PHOTO}?w=50") == "MISS"
    for wrong in (TOKEN[:-1], TOKEN + "0", TOKEN.upper()):
        response = await client.post(
            "/admin/purge", json={"path": PHOTO}, headers={"Authorization": f"Bearer {wrong}"}
        )
        assert response.status == 403
    assert await cache_status(client, f"/picture/{PHOTO}?w=50") == "HIT"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "must be JSON"),
        (b"\xff\xfe", "must be JSON"),
        (b"[" * 60_000, "must be JSON"),
        (b'["photos/"]', "JSON object"),
        (b"{}", "exactly one of path and prefix"),
        (b'{"path": "a.jpg", "prefix": "a"}', "exactly one of path and prefix"),
        (b'{"path": 3}', "path must be a string"),
        (b'{"prefix": ["a"]}', "prefix must be a string"),
        (b'{"prefix": ""}', "prefix must not be empty"),
        (b'{"path": ""}', "path must not be empty"),
        (b'{"path": "/a.jpg"}', "no leading /"),
        (b'{"path": "a\\u0000.jpg"}', "without NUL"),
        (b'{"prefix": "\\ud800"}', "lone surrogates"),
        (b'{"path": "a.jpg", "all": true}', "unknown field"),
    ],
)
async def test_a_malformed_purge_is_a_400_with_its_reason(
    make_client: MakeClient, body: bytes, reason: str
) -> None:
    """Bad JSON, both or neither field, a non-string, an empty prefix: 400, one line."""
    client = await make_client(admin_token=TOKEN)
    response = await client.post("/admin/purge", data=body, headers=AUTH)
    assert response.status == 400
    message = (await response.json())["error"]
    assert reason in message
    assert "\n" not in message


async def test_an_oversized_body_is_a_413(make_client: MakeClient) -> None:
    client = await make_client(admin_token=TOKEN)
    body = json.dumps({"path": "a" * 70_000})
    response = await client.post("/admin/purge", data=body, headers=AUTH)
    assert response.status == 413


# -- what a purge removes ----------------------------------------------------


async def test_a_purge_by_path_removes_every_variant_of_it(make_client: MakeClient) -> None:
    """Each variant of the original is a MISS after the purge; others stay HITs."""
    client = await make_client(admin_token=TOKEN)
    variants = [f"/picture/{PHOTO}?w=40", f"/picture/{PHOTO}?w=60&format=webp"]
    other = "/picture/chelsea.png?w=40"
    for path in [*variants, other]:
        assert await cache_status(client, path) == "MISS"
    report = await post_purge(client, {"path": PHOTO})
    assert report == {
        "removed": {"variants": 2, "sources": 0, "mezzanines": 0},
        "originals": 1,
        "tags": [cdn_tag(PHOTO)],
    }
    for path in variants:
        assert await cache_status(client, path) == "MISS"
    assert await cache_status(client, other) == "HIT"


async def test_a_path_with_nothing_cached_still_gives_its_tag(make_client: MakeClient) -> None:
    """The CDN may hold what this cache evicted: the tag is always in the answer."""
    client = await make_client(admin_token=TOKEN)
    report = await post_purge(client, {"path": "never/asked.jpg"})
    assert report == {
        "removed": {"variants": 0, "sources": 0, "mezzanines": 0},
        "originals": 0,
        "tags": [cdn_tag("never/asked.jpg")],
    }


async def test_a_purge_by_prefix_removes_the_originals_under_it(
    make_client: MakeClient, originals: Path
) -> None:
    """``photos/`` takes photos/a.jpg and photos/deep/b.png, not photos.jpg."""
    (originals / "photos" / "deep").mkdir(parents=True)
    (originals / "photos" / "a.jpg").write_bytes((SAMPLES / PHOTO).read_bytes())
    (originals / "photos" / "deep" / "b.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    (originals / "photos.jpg").write_bytes((SAMPLES / PHOTO).read_bytes())
    client = await make_client(admin_token=TOKEN)
    under = ["/picture/photos/a.jpg?w=30", "/picture/photos/deep/b.png?w=30"]
    for path in [*under, "/picture/photos.jpg?w=30"]:
        await cache_status(client, path)
    report = await post_purge(client, {"prefix": "photos/"})
    assert report == {
        "removed": {"variants": 2, "sources": 0, "mezzanines": 0},
        "originals": 2,
        "tags": sorted([cdn_tag("photos/a.jpg"), cdn_tag("photos/deep/b.png")]),
    }
    assert [await cache_status(client, path) for path in under] == ["MISS", "MISS"]
    assert await cache_status(client, "/picture/photos.jpg?w=30") == "HIT"


async def test_a_named_origin_is_purged_by_its_name_and_path(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """--origin NAME=DIR: the path is NAME/..., as the URL names it."""
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / PHOTO).write_bytes((SAMPLES / PHOTO).read_bytes())
    client = await make_client(
        admin_token=TOKEN, originals_given=True, origins=(parse_named_origin(f"shelf={shelf}"),)
    )
    await cache_status(client, f"/picture/shelf/{PHOTO}?w=30")
    await cache_status(client, f"/picture/{PHOTO}?w=30")
    report = await post_purge(client, {"path": f"shelf/{PHOTO}"})
    assert report["removed"] == {"variants": 1, "sources": 0, "mezzanines": 0}  # type: ignore[index]
    assert await cache_status(client, f"/picture/shelf/{PHOTO}?w=30") == "MISS"
    assert await cache_status(client, f"/picture/{PHOTO}?w=30") == "HIT"


@pytest.fixture
def remote_settings(remote_settings: Settings, origin: Origin) -> Settings:
    """conftest's service of ``origin``, reading under /files/, with the admin token."""
    return replace(remote_settings, originals=origin.url("/files/"), admin_token=TOKEN)


async def serve(aiohttp_client: MakeClient, settings: Settings, **overrides: object) -> Client:
    return await aiohttp_client(create_app(replace(settings, **overrides)))  # type: ignore[arg-type]


async def test_a_remote_original_loses_its_downloaded_copy_too(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin, tmp_path: Path
) -> None:
    """Its record and body leave the source cache: the next request asks the
    origin again (within the TTL, when it would not) and renders anew."""
    client = await serve(aiohttp_client, remote_settings)
    assert await cache_status(client, f"/picture/{PHOTO}?w=40") == "MISS"
    assert origin.log.count(f"/files/{PHOTO}") == 1
    report = await post_purge(client, {"path": PHOTO})
    assert report == {
        # Its record, its header's note (for keys) and its body.
        "removed": {"variants": 1, "sources": 3, "mezzanines": 0},
        "originals": 1,
        "tags": [cdn_tag(PHOTO)],
    }
    with sqlite3.connect(tmp_path / "cache" / "sources" / "index.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    assert await cache_status(client, f"/picture/{PHOTO}?w=40") == "MISS"
    assert origin.log.count(f"/files/{PHOTO}") == 2


async def test_a_purge_forgets_a_remembered_404(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """An original that was missing, put at the origin, is served right after
    a purge, not after --source-negative-ttl."""
    client = await serve(aiohttp_client, remote_settings, source_negative_ttl=3600.0)
    assert (await client.get("/picture/later.jpg?w=40")).status == 404
    (origin.root / "later.jpg").write_bytes((SAMPLES / PHOTO).read_bytes())
    assert (await client.get("/picture/later.jpg?w=40")).status == 404  # remembered
    await post_purge(client, {"path": "later.jpg"})
    assert await cache_status(client, "/picture/later.jpg?w=40") == "MISS"


async def test_a_url_source_is_purged_by_its_url(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    """A ?url= source's purge name is its absolute URL (a fragment aside)."""
    client = await serve(
        aiohttp_client,
        remote_settings,
        url_sources=HostPatterns.parse(f"127.0.0.1:{origin.server.port}"),
        url_sources_allow_networks=parse_networks("127.0.0.1/32"),
    )
    url = origin.url(f"/files/{PHOTO}")
    response = await client.get("/picture", params={"url": url, "w": "40"})
    assert response.status == 200
    assert response.headers["Cache-Tag"] == cdn_tag(url)
    report = await post_purge(client, {"path": url + "#fragment"})
    assert report == {
        "removed": {"variants": 1, "sources": 3, "mezzanines": 0},
        "originals": 1,
        "tags": [cdn_tag(url)],
    }


# -- CDN tags and Cache-Control ---------------------------------------------


async def test_every_image_answer_carries_its_originals_tag(client: Client) -> None:
    """200 and 304 alike: Surrogate-Key and Cache-Tag, the first 16 hex of the
    SHA-256 of the original's purge name."""
    expected = hashlib.sha256(PHOTO.encode()).hexdigest()[:16]
    response = await client.get(f"/picture/{PHOTO}?w=40")
    assert response.headers["Surrogate-Key"] == response.headers["Cache-Tag"] == expected
    again = await client.get(
        f"/picture/{PHOTO}?w=40", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status == 304
    assert again.headers["Surrogate-Key"] == again.headers["Cache-Tag"] == expected


async def test_a_fallback_carries_the_tag_of_the_original_asked_for(
    make_client: MakeClient,
) -> None:
    """Purging the missing original at the CDN replaces its fallback there."""
    client = await make_client(fallback_image=str(SAMPLES / "chelsea.png"))
    response = await client.get("/picture/not/yet.jpg?w=40")
    assert response.status == 404
    assert response.headers["X-Fallback"] == "1"
    assert response.headers["Cache-Tag"] == cdn_tag("not/yet.jpg")
    assert response.headers["Surrogate-Key"] == cdn_tag("not/yet.jpg")


async def test_stale_directives_follow_their_flags(make_client: MakeClient) -> None:
    """Each is the flag's seconds; 0 leaves it out."""
    client = await make_client(cdn_stale_while_revalidate=30, cdn_stale_if_error=0)
    response = await client.get(f"/picture/{PHOTO}?w=40")
    assert response.headers["Cache-Control"] == "public, max-age=86400, stale-while-revalidate=30"
    client = await make_client(cdn_stale_while_revalidate=0, cdn_stale_if_error=90)
    response = await client.get(f"/picture/{PHOTO}?w=40")
    assert response.headers["Cache-Control"] == "public, max-age=86400, stale-if-error=90"


# -- settings ----------------------------------------------------------------


def test_the_admin_token_comes_from_a_flag_a_variable_or_a_file(tmp_path: Path) -> None:
    """``@FILE`` reads the token (a mounted secret); a short one is refused
    without showing it."""
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    assert Settings.from_sources(["--admin-token", f"@{secret}"], {}).admin_token == TOKEN
    environ = {"IMAGE_FACTORY_ADMIN_TOKEN": TOKEN}
    assert Settings.from_sources([], environ).admin_token == TOKEN
    with pytest.raises(SettingsError) as refused:
        Settings.from_sources(["--admin-token", "short-secret"], {})
    assert "short-secret" not in str(refused.value)
    assert TOKEN not in repr(Settings.from_sources([], environ))


def test_a_purge_target_names_urls_as_the_service_does() -> None:
    """A ?url= path is normalised as the handler parses it; prefixes are not."""
    assert PurgeTarget.from_fields({"path": "https://EXAMPLE.com/a b.jpg#x"}).path == (
        "https://example.com/a%20b.jpg"
    )
    assert PurgeTarget.from_fields({"prefix": "https://EXAMPLE"}).prefix == "https://EXAMPLE"


# -- the command line --------------------------------------------------------


async def test_the_command_purges_a_cache_a_service_runs_on(
    make_client: MakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """image-factory purge PATH, against the directory, while the app runs:
    the app's next request is a MISS, and the report is the endpoint's."""
    client = await make_client()
    assert await cache_status(client, f"/picture/{PHOTO}?w=40") == "MISS"
    stamp = PurgeStamp(str(tmp_path / "cache"))
    before = stamp.generation()
    status = main(["purge", PHOTO, "--cache-dir", str(tmp_path / "cache")])
    assert status == 0
    assert json.loads(capsys.readouterr().out) == {
        "removed": {"variants": 1, "sources": 0, "mezzanines": 0},
        "originals": 1,
        "tags": [cdn_tag(PHOTO)],
    }
    assert stamp.generation() == before + 1
    stamp.close()
    assert await cache_status(client, f"/picture/{PHOTO}?w=40") == "MISS"


def test_the_command_takes_a_prefix_and_refuses_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--prefix instead of PATH; both, or neither, is status 2 with a reason."""
    cache_dir = str(tmp_path / "cache")
    assert main(["purge", "--prefix", "photos/", "--cache-dir", cache_dir]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == {
        "variants": 0,
        "sources": 0,
        "mezzanines": 0,
    }
    assert not (tmp_path / "cache").exists()  # nothing was there: nothing is made
    assert main(["purge", PHOTO, "--prefix", "p", "--cache-dir", cache_dir]) == 2
    assert "exactly one of path and prefix" in capsys.readouterr().err
    assert main(["purge", "--cache-dir", cache_dir]) == 2


async def test_a_body_sent_in_pieces_is_read_whole(make_client: MakeClient) -> None:
    """A chunked body arriving in several writes is one purge, not a 400."""
    client = await make_client(admin_token=TOKEN)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"pa', b'th": "', b"x" * 30_000, b'.jpg"}'):
            yield piece
            await asyncio.sleep(0)

    response = await client.post("/admin/purge", data=pieces(), headers=AUTH)
    assert response.status == 200, await response.text()
    assert (await response.json())["tags"] == [cdn_tag("x" * 30_000 + ".jpg")]
