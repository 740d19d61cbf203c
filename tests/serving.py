"""Start the real service as a process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .waiting import eventually

ROOT = Path(__file__).parent.parent
STARTUP_SECONDS = 30
STOP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    wait_until_answering(
        f"{base}/healthz", process, STARTUP_SECONDS, exited="the service exited during start-up"
    )


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], seconds: float, *, exited: str
) -> None:
    """Until ``url`` answers 200; ``exited`` (a message) if ``process`` dies first."""

    def answering() -> bool:
        assert process.poll() is None, exited
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    eventually(
        answering,
        seconds,
        interval=0.05,
        message=f"{url} did not start answering",
        # Refused before the port is bound; then accepted by the service's
        # supervisor socket but unanswered (a timeout) until its worker is up.
        ignoring=(urllib.error.URLError, ConnectionError, TimeoutError),
    )


@dataclass
class RunningService:
    base: str
    port: int
    process: subprocess.Popen[bytes]  # the supervisor: the service always runs supervised

    def workers(self) -> set[int]:
        """The pids of the supervisor's workers (the processes that serve)."""
        return children(self.process.pid)


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


@contextmanager
def running_service(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    stdout: int = subprocess.DEVNULL,
    stderr: int = subprocess.DEVNULL,
) -> Iterator[RunningService]:
    """``python -m service --port <free> ARGUMENTS``, healthy, then SIGTERM.

    A caller that asked for pipes may stop the process and read them itself.
    """
    port = free_port()
    # To see what a service said in a failing test, name a file to append to.
    log_path = os.environ.get("IMAGE_FACTORY_TEST_SERVICE_LOG")
    log = open(log_path, "ab") if log_path and stderr == subprocess.DEVNULL else None  # noqa: SIM115
    with subprocess.Popen(
        [sys.executable, "-m", "service", "--port", str(port), *arguments],
        cwd=ROOT,
        # No drain after SIGTERM (test_shutdown.py tests it): each stop
        # would wait it out.
        env={**os.environ, "IMAGE_FACTORY_DRAIN_SECONDS": "0", **(env or {})},
        stdout=stdout,
        stderr=log or stderr,
    ) as process:
        service = RunningService(f"http://127.0.0.1:{port}", port, process)
        try:
            wait_until_healthy(service.base, process)
            yield service
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=STOP_SECONDS)  # drains pipes, if any
            if log is not None:
                log.close()


def reset_peak_rss() -> None:
    """Start this process's VmHWM again from its RSS now, so that
    ``peak_rss_mb`` sees what follows, not earlier tests' peaks."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")
