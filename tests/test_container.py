"""The production image, built and run as users build and run it.

``make test-container`` runs this (it sets IMAGE_FACTORY_TEST_CONTAINER=1
after scripts/install-deps.sh has installed what the build needs); plain
``make test`` skips it, because a build takes a minute or more.

Builds with ``docker build`` where a Docker engine answers, else with
``../shared/container/build.sh`` (buildah; see its README), runs the image on
a free loopback port, fetches a resized image and /healthz, checks the
service runs as a non-root user, that the image keeps its HEALTHCHECK (and
that the check passes), that ``image-factory loadtest`` in the image loads
it, and stops it with SIGTERM: exit 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.process.allocator import TUNABLES

from .conftest import decode
from .serving import free_port
from .waiting import eventually

ROOT = Path(__file__).parent.parent
IMAGE = "image-factory"
BUILD_SECONDS = 1800
START_SECONDS = 90
STOP_SECONDS = 60

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("IMAGE_FACTORY_TEST_CONTAINER") != "1",
        reason="builds the container image: run by `make test-container`",
    ),
    # The first test pays for the module's build (pytest-timeout counts
    # fixtures): the build's own bound, then starting, loading, stopping.
    pytest.mark.timeout(BUILD_SECONDS + 300),
]


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def shared_container_tools() -> Path:
    """../shared/container: next to this checkout, or next to the repository
    it was cloned from (a CI clone elsewhere), or IMAGE_FACTORY_CONTAINER_TOOLS."""
    candidates = []
    if os.environ.get("IMAGE_FACTORY_CONTAINER_TOOLS"):
        candidates.append(Path(os.environ["IMAGE_FACTORY_CONTAINER_TOOLS"]))
    candidates.append(ROOT.parent / "shared" / "container")
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "container")
    for candidate in candidates:
        if (candidate / "build.sh").exists() and (candidate / "run.sh").exists():
            return candidate
    raise AssertionError(
        "no Docker engine, and no shared/container/build.sh found in "
        + ", ".join(map(str, candidates))
        + "; set IMAGE_FACTORY_CONTAINER_TOOLS"
    )


@dataclass
class Engine:
    """docker, or buildah through ../shared/container's scripts."""

    docker: bool
    tools: Path | None

    @property
    def image(self) -> str:
        return IMAGE if self.docker else f"localhost/{IMAGE}"

    @property
    def tool(self) -> str:
        return "docker" if self.docker else "buildah"

    def image_id(self) -> str:
        listed = subprocess.run(
            [self.tool, "images", "-q", self.image],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return listed.stdout.strip()

    def build(self) -> None:
        if self.docker:
            argv = ["docker", "build", "-t", IMAGE, "."]
        else:
            assert self.tools is not None
            argv = [str(self.tools / "build.sh"), "-t", IMAGE, "."]
        previous = self.image_id()
        built = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_SECONDS, check=False
        )
        assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
        if previous and previous != self.image_id():
            # The image this build replaced is now untagged: do not pile them up.
            subprocess.run([self.tool, "rmi", previous], capture_output=True, check=False)

    def config(self) -> dict[str, Any]:
        """The image's config (User, Env, Healthcheck...), Docker's schema."""
        if self.docker:
            argv = ["docker", "image", "inspect", self.image]
        else:
            argv = ["buildah", "inspect", "--type", "image", self.image]
        shown = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        data = json.loads(shown.stdout)
        config: dict[str, Any] = data[0]["Config"] if self.docker else data["Docker"]["config"]
        return config

    def run_argv(self, port: int, name: str, *command: str) -> list[str]:
        if self.docker:
            publish = ["-p", f"127.0.0.1:{port}:{port}", "-e", f"IMAGE_FACTORY_PORT={port}"]
            return ["docker", "run", "--rm", "--name", name, *publish, self.image, *command]
        assert self.tools is not None
        envs = ["--env", f"IMAGE_FACTORY_PORT={port}", "--env", "IMAGE_FACTORY_HOST=127.0.0.1"]
        return [str(self.tools / "run.sh"), *envs, self.image, *command]

    def exec_argv(self, port: int, name: str, *command: str) -> list[str]:
        """Run command next to the service: inside its container (docker), or
        in a second container on the host network (buildah)."""
        if self.docker:
            # -i: the command's stdin is the caller's (loadtest reads --paths -).
            return ["docker", "exec", "-i", name, *command]
        return self.run_argv(port, name, *command)


@pytest.fixture(scope="module")
def engine() -> Engine:
    docker = docker_engine_answers()
    chosen = Engine(docker=docker, tools=None if docker else shared_container_tools())
    chosen.build()
    return chosen


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def supervisor_of(worker: int) -> int:
    """The parent of a serving worker: the supervisor (buildah's chroot
    isolation shares the host's PID namespace)."""
    stat = Path(f"/proc/{worker}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def process_uid(engine: Engine, name: str, port: int, pid: int) -> int:
    """The real UID of the serving process (the worker that answered)."""
    if engine.docker:
        # PID 1 in the container is the supervisor (exec-form ENTRYPOINT,
        # re-executed under its PID), which runs as the image's USER, as
        # its workers do.
        status = subprocess.run(
            ["docker", "exec", name, "cat", "/proc/1/status"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    else:
        # buildah's chroot isolation shares the host's PID namespace.
        assert "\0-m\0service" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        supervisor = Path(f"/proc/{supervisor_of(pid)}/cmdline").read_bytes().decode()
        assert "service.process.supervisor" in supervisor
        status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    uids = {int(value) for value in uid_line.split()[1:]}
    assert len(uids) == 1, uid_line
    return uids.pop()


@contextlib.contextmanager
def running(engine: Engine, port: int, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    name = f"image-factory-test-{uuid.uuid4().hex[:8]}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            engine.run_argv(port, name), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process, name
    finally:
        if process.poll() is None:
            if engine.docker:
                subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    def health() -> dict[str, Any] | None:
        assert process.poll() is None, "the container exited:\n" + log.read_text()[-3000:]
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            if response.status != 200:
                return None
            body: dict[str, Any] = json.loads(response.read())
            return body

    return eventually(
        health,
        START_SECONDS,
        interval=0.1,
        message=lambda: "the container did not become healthy:\n" + log.read_text()[-3000:],
        # A timeout too: the supervisor's socket accepts before the worker is up.
        ignoring=(urllib.error.URLError, ConnectionError, TimeoutError),
    )


# What the load test asks for: a render cached by then, a new one, a 404.
LOADTEST_PATHS = (
    b"# fed on stdin: run.sh mounts nothing into the container\n"
    b"/picture/retina.jpg?w=300&format=webp\n"
    b"/picture/rocket.jpg?w=200\n"
    b"/picture/missing.jpg?w=100\n"
)


def check_loadtest(engine: Engine, name: str, port: int) -> None:
    """``image-factory loadtest`` is in the image and loads the service
    next to it; --chart says matplotlib is left out, before any request."""
    command = (
        *("/opt/venv/bin/image-factory", "loadtest", f"http://127.0.0.1:{port}"),
        *("--paths", "-", "--duration", "2", "--concurrency", "2", "--json"),
    )
    ran = subprocess.run(
        engine.exec_argv(port, name, *command),
        input=LOADTEST_PATHS,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert b"Traceback" not in ran.stderr, ran.stderr
    result = json.loads(ran.stdout)
    assert result["probe_status"] == 200, result
    assert result["errors"] == {}, result
    assert set(result["statuses"]) == {"200", "404"}, result
    assert result["requests"] == sum(row["count"] for row in result["by_status"])
    assert result["cache"].get("HIT", 0) > 0, result
    assert result["bytes_received"] > 0

    charted = subprocess.run(
        engine.exec_argv(port, name, *command, "--chart", "/tmp/loadtest.png"),  # noqa: S108
        input=LOADTEST_PATHS,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert charted.returncode == 2, charted.stdout + charted.stderr
    assert b"pip install 'image-factory[chart]'" in charted.stderr, charted.stderr


def test_image_configuration(engine: Engine) -> None:
    config = engine.config()
    assert config.get("User") not in (None, "", "root", "0", "0:0"), config.get("User")
    health = config.get("Healthcheck") or {}
    assert health.get("Test", [])[:1] in (["CMD"], ["CMD-SHELL"]), health
    assert any("healthcheck" in part for part in health["Test"]), health
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    assert env["IMAGE_FACTORY_HOST"] == "0.0.0.0"  # noqa: S104 - what the image must set
    assert env["IMAGE_FACTORY_PORT"] == "8080"
    assert env["IMAGE_FACTORY_CACHE_DIR"] in (config.get("Volumes") or {})
    # Configuration only through IMAGE_FACTORY_* variables: no baked-in flags.
    command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    assert not [part for part in command if part.startswith("-")], command
    # The image sets glibc's tuning itself, so the service need not re-execute.
    assert env["GLIBC_TUNABLES"] == TUNABLES, "docs/operating.md, Allocator"


def test_container_serves_resizes_and_stops_cleanly(engine: Engine, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "container.log"
    with running(engine, port, log) as (process, name):
        health = wait_healthy(base, process, log)
        assert health["status"] == "ok"

        status, headers, body = get(f"{base}/picture/retina.jpg?w=300&format=webp")
        assert status == 200, body
        assert headers["Content-Type"] == "image/webp"
        assert decode(body).size == (300, 300)
        assert headers["X-Cache"] == "MISS"
        # The cache volume is writable by the service's user.
        status, headers, _ = get(f"{base}/picture/retina.jpg?w=300&format=webp")
        assert (status, headers["X-Cache"]) == (200, "HIT")

        assert process_uid(engine, name, port, int(health["pid"])) != 0

        # The image's own HEALTHCHECK command passes against the running service...
        check = engine.config()["Healthcheck"]["Test"][1:]
        passed = subprocess.run(
            engine.exec_argv(port, name, *check), capture_output=True, timeout=120, check=False
        )
        assert passed.returncode == 0, passed.stdout + passed.stderr
        # ...and fails where nothing answers.
        idle_port = free_port()
        failed = subprocess.run(
            engine.exec_argv(idle_port, name, "env", f"IMAGE_FACTORY_PORT={idle_port}", *check),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert failed.returncode != 0, failed.stdout + failed.stderr

        check_loadtest(engine, name, port)

        # SIGTERM, as `docker stop` sends it to the container's PID 1, the
        # supervisor: drain, exit 0.
        if engine.docker:
            subprocess.run(["docker", "stop", "-t", "30", name], capture_output=True, check=True)
        else:
            os.kill(supervisor_of(int(health["pid"])), signal.SIGTERM)
        process.wait(timeout=STOP_SECONDS)
        output = log.read_text()
        assert process.returncode == 0, output[-3000:]
        assert "shutting down" in output
        assert "Traceback" not in output
