"""Render tokens: the --workers processes share --total-concurrency renders."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.process.render_tokens import ASK, GIVE_BACK, GRANT, TokenClient, TokenServer
from service.server.app import create_app
from service.settings import Settings

WAIT_SECONDS = 10.0


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Three (supervisor end, worker end) socketpairs, closed afterwards."""
    made = [socket.socketpair() for _ in range(3)]
    for _, worker_end in made:
        worker_end.settimeout(WAIT_SECONDS)
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


def pending(connection: socket.socket) -> bytes:
    """What has arrived on ``connection`` so far, without blocking."""
    connection.setblocking(False)
    try:
        return connection.recv(64)
    except BlockingIOError:
        return b""
    finally:
        connection.settimeout(WAIT_SECONDS)


def test_tokens_are_granted_in_order_up_to_the_limit(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    server = TokenServer(2)
    (a, a_worker), (b, b_worker), (c, c_worker) = pairs
    for connection in (a, b, c):
        server.add(connection)
    server.receive(a, ASK)
    server.receive(b, ASK + ASK)
    server.receive(c, ASK)
    assert a_worker.recv(8) == GRANT
    assert b_worker.recv(8) == GRANT
    assert server.free == 0
    assert pending(b_worker) == b""
    assert pending(c_worker) == b""
    server.receive(a, GIVE_BACK)
    assert b_worker.recv(8) == GRANT  # b asked first, so b's second ask is next
    assert pending(c_worker) == b""
    server.receive(b, GIVE_BACK)
    assert c_worker.recv(8) == GRANT
    assert (server.held_by(a), server.held_by(b), server.held_by(c)) == (0, 1, 1)


def test_giving_back_more_than_held_frees_nothing(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    server = TokenServer(1)
    (a, _), (b, b_worker), _ = pairs
    server.add(a)
    server.add(b)
    server.receive(a, ASK)
    server.receive(b, GIVE_BACK + GIVE_BACK + ASK)
    assert server.free == 0
    assert pending(b_worker) == b""


def test_a_removed_worker_returns_its_tokens_and_drops_its_asks(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    server = TokenServer(2)
    (a, a_worker), (b, b_worker), _ = pairs
    server.add(a)
    server.add(b)
    server.receive(a, ASK * 4)
    assert a_worker.recv(8) == GRANT * 2
    server.receive(b, ASK)
    server.remove(a)  # died holding two tokens with two asks queued
    assert b_worker.recv(8) == GRANT
    assert server.free == 1


@dataclass
class Connected:
    """A TokenClient and the supervisor's end of its socket."""

    supervisor_end: socket.socket
    client: TokenClient
    lost: threading.Event


@pytest.fixture
def connected() -> Iterator[Connected]:
    supervisor_end, worker_end = socket.socketpair()
    supervisor_end.settimeout(WAIT_SECONDS)
    lost = threading.Event()
    yield Connected(supervisor_end, TokenClient(worker_end, lost.set), lost)
    supervisor_end.close()
    worker_end.close()


def test_a_client_waits_for_its_grant_and_gives_it_back(connected: Connected) -> None:
    supervisor_end, client, lost = connected.supervisor_end, connected.client, connected.lost
    inside = threading.Event()
    leave = threading.Event()

    def render() -> None:
        with client.held():
            inside.set()
            leave.wait(WAIT_SECONDS)

    thread = threading.Thread(target=render)
    thread.start()
    assert supervisor_end.recv(8) == ASK
    assert not inside.is_set()
    supervisor_end.sendall(GRANT)
    assert inside.wait(WAIT_SECONDS)
    leave.set()
    assert supervisor_end.recv(8) == GIVE_BACK
    thread.join(WAIT_SECONDS)
    assert not lost.is_set()
    supervisor_end.close()
    assert lost.wait(WAIT_SECONDS)


def test_without_a_supervisor_waiting_renders_go_ahead(connected: Connected) -> None:
    supervisor_end, client, lost = connected.supervisor_end, connected.client, connected.lost
    inside = threading.Event()

    def render() -> None:
        with client.held():
            inside.set()

    waiting = threading.Thread(target=render)
    waiting.start()
    assert supervisor_end.recv(8) == ASK  # asked; never granted
    supervisor_end.close()
    assert lost.wait(WAIT_SECONDS)
    assert inside.wait(WAIT_SECONDS)
    waiting.join(WAIT_SECONDS)
    with client.held():  # and later renders do not block at all
        pass


@pytest.mark.parametrize("workers", [1, 2])
async def test_only_workers_that_share_the_cpus_ask_for_tokens(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    settings: Settings,
    workers: int,
) -> None:
    """A lone worker is the whole service: its own --concurrency bounds
    its renders, so a render costs no trip through the supervisor."""
    supervisor_end, worker_end = socket.socketpair()
    supervisor_end.settimeout(WAIT_SECONDS)
    tokens = TokenClient(worker_end, on_lost=lambda: None)
    try:
        client = await aiohttp_client(create_app(replace(settings, workers=workers), tokens))
        answered = asyncio.ensure_future(client.get("/picture/chelsea.png?w=64"))
        if workers > 1:
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, supervisor_end.recv, 1) == ASK
            supervisor_end.sendall(GRANT)
        response = await asyncio.wait_for(answered, WAIT_SECONDS)
        assert response.status == 200
        assert pending(supervisor_end) == (GIVE_BACK if workers > 1 else b"")
    finally:
        supervisor_end.close()
        worker_end.close()
