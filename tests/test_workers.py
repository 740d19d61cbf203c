"""--workers N: several processes on one port, one cache, replaced on death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import decode
from .serving import running_service

ROOT = Path(__file__).parent.parent
ATTEMPTS = 400


def worker_pid(base: str) -> int:
    # A new connection per call: SO_REUSEPORT spreads connections, not requests.
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
        pid: int = json.load(response)["pid"]
        return pid


def pids_seen(base: str, want: int) -> set[int]:
    seen: set[int] = set()
    for _ in range(ATTEMPTS):
        seen.add(worker_pid(base))
        if len(seen) >= want:
            break
    return seen


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with running_service("--workers", "2", "--cache-dir", str(tmp_path / "cache")) as running:
        yield running.base, running.process
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=60) == 0


def test_two_workers_share_the_port_and_the_cache(
    two_workers: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = two_workers
    deadline = time.monotonic() + 30
    seen: set[int] = set()
    while len(seen) < 2 and time.monotonic() < deadline:
        seen |= pids_seen(base, 2)  # the second worker may still be starting
    assert len(seen) == 2
    caches = set()
    for _ in range(20):  # new connections: both workers answer, from one cache
        url = f"{base}/picture/chelsea.png?w=120"
        with urllib.request.urlopen(url, timeout=30) as response:
            caches.add(response.headers["X-Cache"])
            assert decode(response.read()).size == (120, 80)
    assert "HIT" in caches


def test_a_dead_worker_is_replaced(two_workers: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, _ = two_workers
    victim = worker_pid(base)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            seen |= pids_seen(base, 2)
        except OSError:
            continue  # a connection may land on the dying worker
        if len(seen - {victim}) == 2:
            break
    assert len(seen - {victim}) == 2
