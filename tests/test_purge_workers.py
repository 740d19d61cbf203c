"""Purges under --workers 2: the real supervisor and its workers, each with
its own memos over one cache directory. A purge taken by one worker is in
force in the other at once: the next request is a MISS that renders again,
and a remote original changed at its origin is fetched anew, not trusted
from the other worker's memo for the rest of --source-ttl."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from service.purge import cdn_tag

from .conftest import SAMPLES
from .origin_server import Origin
from .serving import RunningService, running_service

TOKEN = "workers-test-token-0123456789abcdef"  # noqa: S105 - a test's own token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = "rocket.jpg"
# Fresh connections each: SO_REUSEPORT hands them to both workers (all of
# 16 to one of two workers: odds of 1 in 32,768).
SPREAD = 16


def service_arguments(tmp_path: Path, *more: str) -> list[str]:
    # Without the mezzanine: whether two variants build one depends on which
    # worker takes each (each counts its own); test_mezzanine.py purges one.
    return ["--workers", "2", "--cache-dir", str(tmp_path / "cache"), "--no-mezzanine", *more]


async def renders_total(http: aiohttp.ClientSession, service: RunningService) -> float:
    async with http.get(f"{service.base}/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "image_factory_renders_total"
    )


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as response:
        return response.status, response.headers.get("X-Cache", ""), await response.read()


async def spread(http: aiohttp.ClientSession, url: str) -> list[tuple[int, str, bytes]]:
    """``SPREAD`` requests one after another, each on a connection of its own."""
    return [await get(http, url) for _ in range(SPREAD)]


async def purge(http: aiohttp.ClientSession, service: RunningService, body: object) -> object:
    async with http.post(f"{service.base}/admin/purge", json=body, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def fresh_connections() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_a_purge_by_path_is_a_miss_in_every_worker(tmp_path: Path) -> None:
    """Both workers knew the variants; after one purge each renders once
    more, over both workers, and is a HIT again after."""
    env = {"IMAGE_FACTORY_ADMIN_TOKEN": TOKEN}
    with running_service(*service_arguments(tmp_path), env=env) as service:
        async with fresh_connections() as http:
            urls = [f"{service.base}/picture/{PHOTO}?w={width}" for width in (40, 50)]
            for url in urls:
                await spread(http, url)
            before = await renders_total(http, service)
            report = await purge(http, service, {"path": PHOTO})
            assert report == {
                "removed": {"variants": 2, "sources": 0, "mezzanines": 0},
                "originals": 1,
                "tags": [cdn_tag(PHOTO)],
            }
            for url in urls:
                answers = await spread(http, url)
                assert [status for status, _, _ in answers] == [200] * SPREAD
                assert [cache for _, cache, _ in answers] == ["MISS"] + ["HIT"] * (SPREAD - 1)
            assert await renders_total(http, service) == before + 2


async def test_a_purge_by_prefix_is_a_miss_in_every_worker(tmp_path: Path) -> None:
    """``{"prefix": ...}`` over the workers: every original under it renders again."""
    originals = tmp_path / "originals"
    (originals / "shop").mkdir(parents=True)
    for name in (PHOTO, "chelsea.png"):
        (originals / "shop" / name).write_bytes((SAMPLES / name).read_bytes())
    (originals / "keep.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    env = {"IMAGE_FACTORY_ADMIN_TOKEN": TOKEN}
    arguments = service_arguments(tmp_path, "--originals", str(originals))
    with running_service(*arguments, env=env) as service:
        async with fresh_connections() as http:
            under = [f"{service.base}/picture/shop/{name}?w=30" for name in (PHOTO, "chelsea.png")]
            kept = f"{service.base}/picture/keep.png?w=30"
            for url in [*under, kept]:
                await spread(http, url)
            before = await renders_total(http, service)
            report = await purge(http, service, {"prefix": "shop/"})
            assert report["removed"] == {"variants": 2, "sources": 0, "mezzanines": 0}  # type: ignore[index]
            for url in under:
                caches = [cache for _, cache, _ in await spread(http, url)]
                assert caches == ["MISS"] + ["HIT"] * (SPREAD - 1)
            assert {cache for _, cache, _ in await spread(http, kept)} == {"HIT"}
            assert await renders_total(http, service) == before + 2


async def test_the_admin_token_is_checked_by_every_worker(tmp_path: Path) -> None:
    """No token: 401; a wrong one: 403, whichever worker answers."""
    env = {"IMAGE_FACTORY_ADMIN_TOKEN": TOKEN}
    with running_service(*service_arguments(tmp_path), env=env) as service:
        async with fresh_connections() as http:
            url = f"{service.base}/admin/purge"
            for _ in range(4):
                async with http.post(url, json={"path": PHOTO}) as response:
                    assert response.status == 401
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                wrong = {"Authorization": "Bearer " + "x" * 32}
                async with http.post(url, json={"path": PHOTO}, headers=wrong) as response:
                    assert response.status == 403


async def test_a_remote_original_changed_at_its_origin_is_fetched_anew_everywhere(
    tmp_path: Path, origin: Origin
) -> None:
    """Both workers trust the original's record for --source-ttl (an hour
    here); the origin's file changes; after one purge, every worker serves
    the new image at once, none the old one or a 503."""
    env = {"IMAGE_FACTORY_ADMIN_TOKEN": TOKEN}
    arguments = service_arguments(
        tmp_path, "--originals", origin.url("/files/"), "--source-ttl", "3600"
    )
    with running_service(*arguments, env=env) as service:
        async with fresh_connections() as http:
            url = f"{service.base}/picture/{PHOTO}?w=60&format=png"
            old = await spread(http, url)
            assert {status for status, _, _ in old} == {200}
            assert origin.log.count(f"/files/{PHOTO}") == 1
            # The same name, another image.
            (origin.root / PHOTO).write_bytes((SAMPLES / "chelsea.png").read_bytes())
            report = await purge(http, service, {"path": PHOTO})
            assert report["removed"] == {"variants": 1, "sources": 3, "mezzanines": 0}  # type: ignore[index]
            new = await spread(http, url)
            assert [status for status, _, _ in new] == [200] * SPREAD
            assert len({body for _, _, body in old} | {body for _, _, body in new}) == 2
            await asyncio.sleep(0)  # the origin's log is appended on this loop
            assert origin.log.count(f"/files/{PHOTO}") == 2
