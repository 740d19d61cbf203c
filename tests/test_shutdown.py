"""SIGTERM: drain, finish in-flight renders, leave no temporary files, exit 0."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import decode
from .serving import running_service
from .waiting import eventually

ROOT = Path(__file__).parent.parent
# For requests sent from threads to reach the service, or a drain to begin.
ACCEPT_SECONDS = 30


def fetch_size(url: str, results: list[object]) -> None:
    """In a thread: the decoded size of the image at ``url``, or the error."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            results.append(decode(response.read()).size)
    except (urllib.error.URLError, OSError) as error:
        results.append(error)


def test_sigterm_finishes_in_flight_renders_and_exits_cleanly(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    with running_service(
        "--cache-dir", str(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as running:
        base, process = running.base, running.process
        results: list[object] = []
        # AVIF renders of a 2 MP photo take long enough to be in flight.
        threads = [
            threading.Thread(
                target=fetch_size,
                args=(f"{base}/picture/retina.jpg?w={width}&format=avif", results),
            )
            for width in (1100, 1200)
        ]
        for thread in threads:
            thread.start()
        assert process.stdout is not None

        def took_both() -> bool:
            """The in-flight gauge says both are accepted (or both are done)."""
            text = metrics(base)
            return in_flight(text, 2) or "renders_total 2.0" in text

        eventually(took_both, ACCEPT_SECONDS, message="the service never took both renders")
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=120)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output.decode(errors="replace")
    assert sorted(results, key=str) == [(1100, 1100), (1200, 1200)], results
    assert list((cache_dir / "tmp").iterdir()) == []
    assert b"Traceback" not in output


def in_flight(text: str, count: int) -> bool:
    """Whether the scrape ``text`` shows ``count`` renders in flight (in the
    one worker: its gauge carries its pid)."""
    return (
        re.search(rf"^image_factory_renders_in_flight{{pid=\"\d+\"}} {count}\.0$", text, re.M)
        is not None
    )


def metrics(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    ("workers", "first", "second"),
    [
        # the service is always supervised: SIGINT ends the drain, and so
        # does a second SIGTERM (passed on as SIGINT to the workers)
        ("1", [signal.SIGTERM], signal.SIGINT),
        ("2", [signal.SIGTERM], signal.SIGTERM),
    ],
)
def test_sigterm_drains_with_healthz_503_until_told_to_stop(
    tmp_path: Path, workers: str, first: list[signal.Signals], second: signal.Signals
) -> None:
    """The contract's "/healthz answers 503 once shutdown has begun", seen by
    a load balancer: during the drain /healthz is 503 on new connections
    while images are still served, until the (here, ten minute) drain is
    cut short."""
    with running_service(
        "--cache-dir", str(tmp_path / "cache"), "--workers", workers,
        env={"IMAGE_FACTORY_DRAIN_SECONDS": "600"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as running:  # fmt: skip
        base, process = running.base, running.process
        assert _status(f"{base}/healthz") == 200
        for signum in first:
            process.send_signal(signum)
        eventually(  # with 2 workers: until both drain
            lambda: _status(f"{base}/healthz") == 503,
            ACCEPT_SECONDS,
            message="/healthz never turned 503",
        )
        for _ in range(4):  # whichever worker answers
            assert _status(f"{base}/healthz") == 503
        with urllib.request.urlopen(f"{base}/picture/rocket.jpg?w=90", timeout=30) as response:
            assert decode(response.read()).size[0] == 90
        assert process.poll() is None  # still draining
        process.send_signal(second)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"Traceback" not in output


def test_sigint_during_a_drain_still_finishes_in_flight_renders(tmp_path: Path) -> None:
    """SIGINT ends a drain at once, but the drain's own timer, still pending,
    fired into aiohttp's cleanup a second stop that abandoned the requests
    in flight and skipped closing the cache (exit 1). Five AVIF renders
    queued on one slot outlast the 0.2 s drain."""
    with running_service(
        "--cache-dir", str(tmp_path / "cache"), "--concurrency", "1",
        env={"IMAGE_FACTORY_DRAIN_SECONDS": "0.2"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as running:  # fmt: skip
        base, process = running.base, running.process
        results: list[object] = []
        widths = (1000, 1050, 1100, 1150, 1200)
        threads = [
            threading.Thread(
                target=fetch_size,
                args=(f"{base}/picture/retina.jpg?w={w}&format=avif&q=90", results),
            )
            for w in widths
        ]
        for thread in threads:
            thread.start()
        eventually(  # all five accepted: one rendering, four queued
            lambda: in_flight(metrics(base), 5),
            ACCEPT_SECONDS,
            message="the renders never started",
        )
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        for thread in threads:
            thread.join(timeout=120)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")
    assert sorted(results, key=str) == sorted(((w, w) for w in widths), key=str), results
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
