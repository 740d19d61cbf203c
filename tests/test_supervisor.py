"""The --workers supervisor: several processes on one port, one cache, replaced on death."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import proctree

from .conftest import decode
from .serving import running_service
from .waiting import eventually

ROOT = Path(__file__).parent.parent
# For a worker to start (or a dead one to be replaced), or to stop.
WORKER_SECONDS = 60


def worker_pid(base: str) -> int:
    # A new connection per call: SO_REUSEPORT spreads connections, not requests.
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
        pid: int = json.load(response)["pid"]
        return pid


def serve_two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with running_service("--workers", "2", "--cache-dir", str(tmp_path / "cache")) as running:
        yield running.base, running.process
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=60) == 0


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    yield from serve_two_workers(tmp_path)


@pytest.fixture
def two_unmeasured_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``two_workers`` without coverage's subprocess measurement (`make
    test` turns it on through this variable): coverage would map its own
    imports, hashlib's libcrypto among them, into the supervisor."""
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)
    yield from serve_two_workers(tmp_path)


def test_two_workers_share_the_port_and_the_cache(
    two_workers: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = two_workers
    seen: set[int] = set()

    def both_answered() -> bool:
        seen.add(worker_pid(base))  # the second worker may still be starting
        return len(seen) == 2

    eventually(both_answered, 30, interval=0, message="one worker never answered")
    assert len(seen) == 2
    caches = set()
    for _ in range(20):  # new connections: both workers answer, from one cache
        url = f"{base}/picture/chelsea.png?w=120"
        with urllib.request.urlopen(url, timeout=30) as response:
            caches.add(response.headers["X-Cache"])
            assert decode(response.read()).size == (120, 80)
    assert "HIT" in caches


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {os.path.basename(line.split()[-1]) for line in maps if "/" in line}


def test_the_supervisor_is_a_lean_process_without_libvips_aiohttp_or_openssl(
    two_unmeasured_workers: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """The supervisor re-executes itself as service.process.supervisor: same PID, no
    libvips, aiohttp or OpenSSL (signing keys) mapped, while workers have them."""
    base, process = two_unmeasured_workers
    with open(f"/proc/{process.pid}/cmdline") as cmdline:
        assert cmdline.read().split("\0")[1:3] == ["-m", "service.process.supervisor"]
    supervisor = mapped_files(process.pid)
    worker = mapped_files(worker_pid(base))
    assert any(name.startswith("libvips") for name in worker)
    assert not any(name.startswith("libvips") for name in supervisor)
    assert any(name.startswith("_http_parser") for name in worker)  # aiohttp's
    assert not any(
        name.startswith(("_http_parser", "libcrypto", "_hashlib")) for name in supervisor
    )


def test_a_dead_worker_is_replaced(two_workers: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, _ = two_workers
    victim = worker_pid(base)
    os.kill(victim, signal.SIGKILL)
    seen: set[int] = set()

    def two_others_answered() -> bool:
        seen.add(worker_pid(base))
        return len(seen - {victim}) == 2

    eventually(
        two_others_answered,
        WORKER_SECONDS,
        interval=0,
        message="the dead worker was not replaced",
        ignoring=(OSError,),  # a connection may land on the dying worker
    )
    assert len(seen - {victim}) == 2


def cpu_seconds(pid: int) -> float:
    return proctree.cpu_seconds([pid])


def has_exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def connection_to_each_worker(port: int, want: int) -> dict[int, http.client.HTTPConnection]:
    """Keep-alive connections, one per worker: requests on a connection stay
    with the worker the kernel gave it to."""
    found: dict[int, http.client.HTTPConnection] = {}

    def one_to_each() -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/healthz")
        pid = json.load(connection.getresponse())["pid"]
        if pid in found:
            connection.close()
        else:
            found[pid] = connection
        return len(found) == want

    eventually(one_to_each, WORKER_SECONDS, interval=0, message=f"fewer than {want} workers")
    assert len(found) == want
    return found


def test_workers_share_one_render_token_and_a_dead_worker_gives_it_back(tmp_path: Path) -> None:
    """--total-concurrency 1 over two workers: while one worker is stopped
    in the middle of a render, the other cannot start one; once the stopped
    worker is killed, its token comes back and the other renders."""
    originals = tmp_path / "originals"
    originals.mkdir()
    Image.effect_noise((3000, 2000), 60).convert("RGB").save(originals / "noise.png")
    with running_service(
        "--workers", "2", "--total-concurrency", "1", "--concurrency", "2",
        "--originals", str(originals), "--cache-dir", str(tmp_path / "cache"),
    ) as running:  # fmt: skip
        connections = connection_to_each_worker(running.port, 2)
        (holder, holder_connection), (_, other_connection) = connections.items()
        before = cpu_seconds(holder)
        holder_connection.request("GET", "/picture/noise.png?w=2000&format=webp")
        eventually(
            lambda: cpu_seconds(holder) - before >= 0.1,
            30,
            interval=0.01,
            message="the render never started",
        )
        assert cpu_seconds(holder) - before >= 0.1, "the render never started"
        os.kill(holder, signal.SIGSTOP)  # mid-render, holding the only token

        answered = threading.Event()
        statuses: list[int] = []

        def ask_the_other_worker() -> None:
            other_connection.request("GET", "/picture/noise.png?w=100")
            response = other_connection.getresponse()
            statuses.append(response.status)
            assert decode(response.read()).size == (100, 67)
            answered.set()

        asking = threading.Thread(target=ask_the_other_worker)
        asking.start()
        # A small render takes milliseconds; two seconds without an answer
        # means the other worker is waiting for the token, as it must.
        assert not answered.wait(2.0)
        os.kill(holder, signal.SIGKILL)
        assert answered.wait(60), "the dead worker's token never came back"
        asking.join()
        assert statuses == [200]
        other_connection.close()
        holder_connection.close()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    with running_service("--workers", "2", "--cache-dir", str(tmp_path / "cache")) as running:
        connections = connection_to_each_worker(running.port, 2)
        for connection in connections.values():
            connection.close()
        workers = set(connections)
        running.process.kill()
        running.process.wait()
        eventually(
            lambda: all(has_exited(pid) for pid in workers),
            WORKER_SECONDS,
            interval=0.05,
            message="a worker outlived its supervisor",
        )
        assert all(has_exited(pid) for pid in workers)


def test_a_render_gives_its_token_back_before_the_cache_commit(tmp_path: Path) -> None:
    """--total-concurrency 1: while the cache index is write-locked, so that
    the first render cannot commit, a second render in the other worker
    still gets the token (its temporary file appears), and both are answered
    once the lock goes. One request per worker: within one process a lookup
    waits for the index connection a blocked commit holds, which is not
    what this asks."""
    originals = tmp_path / "originals"
    originals.mkdir()
    Image.effect_noise((600, 400), 60).convert("RGB").save(originals / "noise.png")
    cache = tmp_path / "cache"
    with running_service(
        "--workers", "2", "--total-concurrency", "1",
        "--originals", str(originals), "--cache-dir", str(cache),
    ) as running:  # fmt: skip
        connections = list(connection_to_each_worker(running.port, 2).values())
        index = sqlite3.connect(cache / "index.sqlite3", isolation_level=None)
        index.execute("BEGIN IMMEDIATE")  # every commit now waits for us
        statuses: list[int] = []

        def fetch(connection: http.client.HTTPConnection, width: int) -> None:
            connection.request("GET", f"/picture/noise.png?w={width}")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)

        askers = [
            threading.Thread(target=fetch, args=(connection, width))
            for connection, width in zip(connections, (300, 200), strict=True)
        ]

        def both_rendering() -> int | None:
            """The temporary files of renders under way, once there are two."""
            temporary = len(list((cache / "tmp").iterdir()))
            return temporary if temporary >= 2 else None

        try:
            for asker in askers:
                asker.start()
            rendering = eventually(
                both_rendering,
                20,  # under SQLite's 30 s busy timeout
                interval=0.01,
                message="the second render waited for the first one's commit",
            )
        finally:
            index.execute("ROLLBACK")
            index.close()
            for asker in askers:  # answered once the lock goes, pass or fail
                asker.join(60)
            for connection in connections:
                connection.close()
        assert rendering == 2, "the second render waited for the first one's commit"
        assert statuses == [200, 200]
