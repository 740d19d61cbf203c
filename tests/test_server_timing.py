"""--server-timing: where an image answer spent its time, in its headers."""

from __future__ import annotations

import re
from dataclasses import replace

from service.server.app import create_app
from service.settings import Settings
from service.timings import Timings

from .conftest import Client, MakeClient
from .origin_server import Origin

# name, an optional desc, and dur in milliseconds (W3C Server Timing).
_METRIC = re.compile(r"(?P<name>[a-z]+)(?:;desc=(?P<desc>[a-z]+))?;dur=(?P<dur>[^,;]+)")


def steps(header: str) -> dict[str, tuple[str, float]]:
    """Each step's desc and duration; fails on anything else in the header."""
    found: dict[str, tuple[str, float]] = {}
    for item in header.split(", "):
        match = _METRIC.fullmatch(item)
        assert match is not None, f"not a Server-Timing metric: {item!r}"
        found[match["name"]] = (match["desc"] or "", float(match["dur"]))
    return found


def assert_durations(found: dict[str, tuple[str, float]]) -> None:
    for name, (_, duration) in found.items():
        assert duration >= 0, f"{name} took {duration} ms"


async def test_no_header_without_the_flag(client: Client) -> None:
    url = "/picture/rocket.jpg?w=90"
    for _ in range(3):  # a render, then hits: remembered and not
        response = await client.get(url)
        assert response.status == 200
        assert "Server-Timing" not in response.headers


async def test_a_render_says_its_lookup_waits_render_and_write(make_client: MakeClient) -> None:
    """Its lookup, the decode budget's wait (always on), the thread's, the
    render and the cache write."""
    client = await make_client(server_timing=True)
    response = await client.get("/picture/rocket.jpg?w=91")
    assert response.headers["X-Cache"] == "MISS"
    found = steps(response.headers["Server-Timing"])
    assert set(found) == {"cache", "budget", "queue", "render", "write"}
    assert found["cache"][0] == "miss"
    assert found["render"][1] > 0  # a render takes time; a missing one would be 0
    assert_durations(found)


async def test_a_hit_says_its_lookup_alone(make_client: MakeClient) -> None:
    client = await make_client(server_timing=True)
    url = "/picture/rocket.jpg?w=92"
    await client.get(url)
    for _ in range(2):  # the first hit goes the full way, the second is remembered
        response = await client.get(url)
        assert response.headers["X-Cache"] == "HIT"
        found = steps(response.headers["Server-Timing"])
        assert set(found) == {"cache"}
        assert found["cache"][0] == "hit"
        assert_durations(found)


async def test_a_remote_original_shows_its_origin_fetch(
    aiohttp_client: MakeClient, remote_settings: Settings, origin: Origin
) -> None:
    settings = replace(remote_settings, server_timing=True)
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/picture/files/rocket.jpg?w=94")
    assert response.status == 200
    found = steps(response.headers["Server-Timing"])
    assert {"origin", "cache", "render"} <= set(found)
    assert found["origin"][1] > 0
    assert_durations(found)


def test_the_header_is_in_milliseconds_and_never_negative() -> None:
    timings = Timings()
    timings.add("render", 0.0125)
    timings.add("cache", -1e-9, desc="hit")  # a clock's jitter
    assert timings.header() == "render;dur=12.500, cache;desc=hit;dur=0.000"
