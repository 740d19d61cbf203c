"""The command as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import decode
from .serving import running_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    with running_service(
        "--print-examples",
        env={"IMAGE_FACTORY_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as running:
        yield running.base
        running.process.terminate()
        output, _ = running.process.communicate(timeout=30)
    assert running.process.returncode == 0
    assert b"Traceback" not in output, output.decode(errors="replace")


def test_serves_a_resized_webp_of_a_sample(service: str) -> None:
    """What `make run` promises: the samples, resized, on loopback."""
    url = f"{service}/picture/retina.jpg?scalex=800&encoding=webp"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"] == "image/webp"
        image = decode(response.read())
    assert image.format == "WEBP"
    assert image.size == (800, 800)


def test_bad_flag_exits_before_binding_the_port() -> None:
    """A bad value is a one-line error and exit code 2, not a bind attempt."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service", "--port", str(port), "--max-output-size", "big"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--max-output-size" in lines[0]
    assert "address" not in result.stderr.lower()


def _serve_briefly(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_not_a_traceback(workers: str) -> None:
    """Not a bad value, but the same courtesy: one line, non-zero, and no
    workers dying and being replaced in a loop."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = _serve_briefly("--port", str(port), "--workers", workers)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"image-factory: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize("host", ["999.1.1.1", "no such host.invalid"])
def test_a_host_that_does_not_resolve_is_a_bad_value(host: str) -> None:
    result = _serve_briefly("--host", host, "--port", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"image-factory: --host: cannot resolve {host!r}")


def test_json_access_log_has_one_line_per_request(tmp_path: Path) -> None:
    """--log-format json: one parseable line per request with the fields operators need."""
    with running_service(
        "--log-format",
        "json",
        env={"IMAGE_FACTORY_CACHE_DIR": str(tmp_path / "cache")},
        stderr=subprocess.PIPE,
    ) as running:
        request = urllib.request.Request(
            f"{running.base}/picture/rocket.jpg?w=100", headers={"X-Request-Id": "trace-42"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            size = len(response.read())
        running.process.terminate()
        _, errors = running.process.communicate(timeout=30)
    entries = [json.loads(line) for line in errors.decode().splitlines()]
    access = [entry for entry in entries if entry["logger"] == "image_factory.access"]
    picture = next(entry for entry in access if entry["path"] == "/picture/rocket.jpg?w=100")
    assert picture["status"] == 200
    assert picture["bytes"] == size
    assert picture["cache"] == "MISS"
    assert picture["render_ms"] > 0
    assert picture["duration_ms"] >= picture["render_ms"]
    assert picture["request_id"] == "trace-42"
    assert picture["method"] == "GET"
