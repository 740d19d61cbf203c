"""A miss of a local original leaves the event loop once before its render:
the trip that looks the variant up also prepares its render, and the
rendered file is opened on the loop. Each trip to a thread and back costs
the one event loop of a process its GIL twice."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import pytest

from service.renders import RenderedFile
from service.server.state import RENDERS

from .conftest import Client, decode, renders_total

T = TypeVar("T")


def count_trips(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the app's renders run off the loop."""
    renders = client.app[RENDERS]
    trips: list[str] = []
    real = renders.to_thread

    async def counted(function: Callable[..., T], *args: object) -> T:
        named = function.func if isinstance(function, functools.partial) else function
        trips.append(named.__name__)
        return await real(function, *args)

    monkeypatch.setattr(renders, "to_thread", counted)
    return trips


async def test_a_miss_takes_one_trip_off_the_loop_before_its_render(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = count_trips(client, monkeypatch)
    response = await client.get("/picture/chelsea.png?w=123&format=jpeg")
    assert response.status == 200
    assert response.headers["X-Cache"] == "MISS"
    assert decode(await response.read()).width == 123
    assert renders_total(client) == 1
    assert trips == ["locate"]


async def test_a_second_attempt_looks_the_cache_up_again(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render evicted between its commit and its open (here: its open
    finds nothing) is looked up again, in a trip of its own: the first
    attempt's lookup was the locator's, the second finds the commit."""
    renders = client.app[RENDERS]
    opened: list[str] = []

    def evicted(rendered: RenderedFile, render_seconds: float | None) -> None:
        opened.append(rendered.path)

    monkeypatch.setattr(renders, "_open_rendered", evicted)
    trips = count_trips(client, monkeypatch)
    response = await client.get("/picture/chelsea.png?w=124&format=jpeg")
    assert response.status == 200
    assert decode(await response.read()).width == 124
    assert len(opened) == 1
    assert trips == ["locate", "open_cached"]
    assert renders_total(client) == 1
