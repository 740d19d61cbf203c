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

from .serving import running_service
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
