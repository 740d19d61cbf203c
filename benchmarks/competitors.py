"""The servers under test, how they are set up, started and stopped.

- ``service``: Image Factory itself, from the project venv.
- ``baseline``: ``benchmarks/baseline_app.py`` (Flask + Pillow) under
  gunicorn, one sync worker per core.
- ``thumbor``: thumbor from PyPI, 2 processes, file loader, file result
  storage, loopback only, with the minimal config written here.
- ``ipx``: ipx (Node + sharp) from npm, one Node process serving
  ``benchmarks/ipx_server.mjs``, its libuv pool one thread per core.

The baseline and thumbor run from their own venvs under ``.bench-venv/``
(created on first use, pinned versions; thumbor needs Pillow < 13), never
from the system's or the project's; ipx from ``.bench-node/`` (``benchmarks.node``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_VENV = os.path.join(ROOT, ".bench-venv")

# What was measured; bump deliberately.
REQUIREMENTS = {
    "baseline": ["flask==3.1.3", "gunicorn==27.0.1", "pillow==13.0.0", "matplotlib==3.11.2"],
    "thumbor": ["thumbor==7.8.0"],
}


def venv_python(name: str) -> str:
    return os.path.join(BENCH_VENV, name, "bin", "python")


def ensure_venv(name: str) -> str:
    """Create (or update) ``.bench-venv/<name>`` with its pinned packages."""
    folder = os.path.join(BENCH_VENV, name)
    stamp = os.path.join(folder, ".requirements")
    wanted = "\n".join(REQUIREMENTS[name])
    if os.path.isfile(stamp):
        with open(stamp) as handle:
            if handle.read() == wanted:
                return venv_python(name)
    print(f"bench: setting up {folder} ({', '.join(REQUIREMENTS[name])})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", folder], check=True)
    pip = [venv_python(name), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + REQUIREMENTS[name], check=True)
    with open(stamp, "w") as handle:
        handle.write(wanted)
    return venv_python(name)


def service_defaults() -> tuple[dict[str, int], int]:
    """The service's current output defaults: quality per lossy format, AVIF effort."""
    from service.formats import FIXED_QUALITY  # noqa: PLC0415
    from service.settings import Settings  # noqa: PLC0415

    quality: dict[str, int] = {str(fmt.value): q for fmt, q in FIXED_QUALITY.items()}
    effort: int = Settings.__dataclass_fields__["avif_effort"].default  # type: ignore[assignment]
    return quality, effort


def quality_list(quality: dict[str, int]) -> str:
    return ",".join(f"{name}={value}" for name, value in quality.items())


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, name: str, timeout: float, interval: float = 0.2
) -> None:
    """Until ``url`` answers 200; RuntimeError if ``process`` exits first or
    ``timeout`` passes (a start-up poll, in the harness, not a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} at start")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(slots=True)
class Server:
    """A running competitor: its process group, URL and settings."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    health_path: str
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until_ready(self.process, self.base_url + self.health_path, self.name, timeout)

    def stop(self) -> None:
        """SIGTERM to the group we started (its own session), then SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _spawn(
    argv: list[str], log_path: str, env: dict[str, str] | None = None, cwd: str = ROOT
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends exactly it
        )


def service_cache_dir(workdir: str, name: str) -> str:
    """The cache directory ``start_service`` gives the service ``name``."""
    return os.path.join(workdir, f"{name}-cache")


def start_service(
    originals: str,
    workdir: str,
    *,
    workers: int,
    concurrency: int | None = None,
    total_concurrency: int | None = None,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    wrapper: Sequence[str] = (),
    name: str = "service",
    checkout: str | None = None,
) -> Server:
    """The service; ``None`` leaves a setting at the service's default (one
    render per core machine-wide, whichever worker holds the connection).
    ``wrapper`` runs it under another program (valgrind). ``checkout`` runs
    the ``service`` package of another checkout of the project (an A/B of
    two commits) with this venv's packages, under ``name``."""
    port = free_port()
    cache = service_cache_dir(workdir, name)
    argv = [
        sys.executable, "-m", "service",
        "--port", str(port),
        "--originals", originals,
        "--cache-dir", cache,
        "--cache-max-bytes", "4GB",
        "--workers", str(workers),
        "--queue", "256",
        # The 46 MP PNG photo is 105 MB: over the default --max-source-bytes.
        "--max-source-bytes", "200MB",
    ]  # fmt: skip
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if total_concurrency is not None:
        argv += ["--total-concurrency", str(total_concurrency)]
    argv += extra_args
    source = os.path.abspath(checkout) if checkout else ROOT
    if checkout:
        env = {**(env or {}), "PYTHONPATH": source}
    process = _spawn([*wrapper, *argv], os.path.join(workdir, f"{name}.log"), env, cwd=source)
    quality, effort = service_defaults()
    settings = {
        "command": "python -m service " + " ".join(argv[3:]),
        "checkout": source,
        "workers": workers,
        "concurrency_per_worker": concurrency or "default (CPUs)",
        "total_concurrency": total_concurrency or "default (CPUs)",
        "environment": env or {},
        "quality": f"service defaults: {quality_list(quality)}, AVIF effort {effort}",
    }
    return Server(name, port, process, "/healthz", settings)


def start_baseline(
    originals: str,
    workdir: str,
    *,
    workers: int,
    extra_args: Sequence[str] = (),
    wrapper: Sequence[str] = (),
) -> Server:
    python = ensure_venv("baseline")
    port = free_port()
    cache = os.path.join(workdir, "baseline-cache")
    argv = [
        python, "-m", "gunicorn",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}",
        "--backlog", "2048",
        "--timeout", "120",
        *extra_args,
        "benchmarks.baseline_app:app",
    ]  # fmt: skip
    quality = quality_list(service_defaults()[0])
    env = {
        "BASELINE_ORIGINALS": originals,
        "BASELINE_CACHE_DIR": cache,
        "BASELINE_QUALITY": quality,
    }
    process = _spawn([*wrapper, *argv], os.path.join(workdir, "baseline.log"), env)
    settings = {
        "command": "gunicorn " + " ".join(argv[3:]),
        "workers": workers,
        "stack": "Flask 3.1 + Pillow 13, Image.thumbnail defaults (draft + LANCZOS), "
        f"send_from_directory; quality {quality} (the service's), else Pillow defaults",
    }
    return Server("baseline", port, process, "/healthz", settings)


THUMBOR_CONF = """\
# Written by benchmarks/competitors.py: a minimal thumbor for the benchmark.
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {originals!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = "thumbor.result_storages.file_storage"
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {results!r}
RESULT_STORAGE_STORES_UNSAFE = True
ALLOW_UNSAFE_URL = True
QUALITY = {jpeg}
WEBP_QUALITY = {webp}
AVIF_QUALITY = {avif}
MAX_AGE = 86400
RESPECT_ORIENTATION = True
"""


def start_thumbor(originals: str, workdir: str, *, processes: int) -> Server:
    python = ensure_venv("thumbor")
    port = free_port()
    conf = os.path.join(workdir, "thumbor.conf")
    with open(conf, "w") as handle:
        handle.write(
            THUMBOR_CONF.format(
                originals=os.path.abspath(originals),
                results=os.path.join(workdir, "thumbor-results"),
                **service_defaults()[0],
            )
        )
    thumbor = os.path.join(os.path.dirname(python), "thumbor")
    argv = [
        thumbor, "--ip", "127.0.0.1", "--port", str(port),
        "--conf", conf, "--processes", str(processes), "--log-level", "error",
    ]  # fmt: skip
    process = _spawn(argv, os.path.join(workdir, "thumbor.log"))
    settings = {
        "command": "thumbor " + " ".join(argv[1:]),
        "processes": processes,
        "config": "file loader, no original storage, file result storage (unsafe URLs "
        f"stored), PIL engine, quality {quality_list(service_defaults()[0])}",
    }
    return Server("thumbor", port, process, "/healthcheck", settings)


IPX_SCRIPT = os.path.join(ROOT, "benchmarks", "ipx_server.mjs")


def ipx_command(node: str, modules: str, originals: str, port: int) -> list[str]:
    """The command line of ipx's server script (``benchmarks/ipx_server.mjs``)."""
    return [node, IPX_SCRIPT, modules, os.path.abspath(originals), str(port)]


def ipx_environment(cores: int) -> dict[str, str]:
    """ipx's environment: libuv's pool one thread per core.

    sharp runs each image on a thread of libuv's pool (and gives libvips one
    thread per image on glibc, ``sharp.concurrency()`` 1), so the pool's size
    is how many images ipx renders at once: 4 by default whatever the
    machine, one per core here, as the service's and the baseline's one
    render per core (reading the originals shares that pool)."""
    return {"UV_THREADPOOL_SIZE": str(cores)}


def start_ipx(originals: str, workdir: str, *, modules: str, cores: int) -> Server:
    """ipx (Node + sharp) in one process; ``modules`` from ``benchmarks.node``."""
    from . import node  # noqa: PLC0415 - only a run with ipx needs Node

    port = free_port()
    argv = ipx_command(node.node_binary(), modules, originals, port)
    env = ipx_environment(cores)
    process = _spawn(argv, os.path.join(workdir, "ipx.log"), env)
    quality = quality_list(service_defaults()[0])
    settings = {
        "command": "node " + " ".join(argv[1:]),
        "packages": list(node.PACKAGES),
        "processes": 1,
        "environment": env,
        "config": "createIPX + ipxFSStorage + createIPXNodeServer, ipx's and sharp's "
        f"defaults (progressive JPEG, AVIF effort 4); quality in each URL, {quality} "
        "(the service's); no result cache (ipx has none: every request renders)",
    }
    return Server("ipx", port, process, "/healthz", settings)


def fetch(url: str, timeout: float = 120.0) -> tuple[int, dict[str, str], int]:
    """GET ``url``: (status, headers, body length)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), len(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), len(error.read())


def describe_machine() -> dict[str, object]:
    info: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "kernel": os.uname().release,
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            info["mem_total_kib"] = int(handle.readline().split()[1])
    except OSError:
        pass
    with contextlib.suppress(OSError, IndexError):
        info["wrk"] = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    return info


def to_json(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=False)
