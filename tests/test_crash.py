"""A crash costs one worker, never the service (issue 22, part 4): the
service always runs supervised, and the supervisor holds the listening
socket, so while a crashed worker is replaced the port stays bound and new
connections wait in the backlog instead of being refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyvips

from .serving import running_service
from .test_supervisor import connection_to_each_worker, cpu_seconds
from .waiting import eventually


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read()


def test_a_worker_killed_by_sigsegv_is_replaced_and_no_connection_is_refused(
    tmp_path: Path,
) -> None:
    with running_service("--cache-dir", str(tmp_path / "cache")) as running:
        (worker,) = running.workers()
        status, _ = get(f"{running.base}/picture/retina.jpg?w=120")
        assert status == 200
        os.kill(worker, signal.SIGSEGV)
        eventually(lambda: not running.workers() & {worker}, 30, message="the worker lived on")
        # Nothing serves at this instant, or the replacement is starting:
        # the socket is still bound, so a connection is accepted by the
        # kernel and each request waits for the new worker.
        with socket.create_connection(("127.0.0.1", running.port), timeout=5):
            pass
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    get,
                    [f"{running.base}/picture/retina.jpg?w=120"] * 4
                    + [f"{running.base}/healthz"] * 4,
                )
            )
        assert [status for status, _ in answers] == [200] * 8
        (replacement,) = running.workers()
        assert replacement != worker
        assert json.loads(answers[-1][1])["pid"] == replacement
        assert running.process.poll() is None  # the supervisor, and the port, never went away


def test_requests_in_flight_on_another_worker_finish_when_one_crashes(tmp_path: Path) -> None:
    """Two workers: a slow render runs on one while the other is killed by
    SIGSEGV; the render on the survivor is answered, whole."""
    originals = tmp_path / "originals"
    originals.mkdir()
    big = pyvips.Image.gaussnoise(4000, 3000).cast("uchar").bandjoin([128, 200])
    big.write_to_file(str(originals / "big.png"))
    arguments = ("--originals", str(originals), "--cache-dir", str(tmp_path / "cache"))
    with running_service(*arguments, "--workers", "2") as running:
        connections = connection_to_each_worker(running.port, 2)
        try:
            survivor, victim = sorted(connections)
            slow = connections[survivor]
            before = cpu_seconds(survivor)
            slow.request("GET", "/picture/big.png?w=3000&format=avif&q=90")
            eventually(
                lambda: cpu_seconds(survivor) > before + 0.5, 60, message="no render started"
            )
            os.kill(victim, signal.SIGSEGV)
            reply = slow.getresponse()
            body = reply.read()
        finally:
            for connection in connections.values():
                connection.close()
        assert reply.status == 200
        assert body[4:12] == b"ftypavif"
        assert survivor in running.workers()
