"""ipx's runtime: Node and npm from Debian's packages, ipx and sharp in ``.bench-node/``.

``ensure_ipx()`` installs ``nodejs`` and ``npm`` through apt-get when
``node`` or ``npm`` is missing (``benchmarks.debian``), then the pinned ipx
and sharp with ``npm install --prefix .bench-node`` (once: a stamp file
records what was installed), like ``.bench-venv/`` for the Python
competitors; never into the system's or the project's folders. That one
set-up downloads from the registries; the benchmark itself stays on loopback.

``skip_reason()`` is the one-line reason ipx cannot run here (None when it
can): the suite records it and goes on without ipx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from . import debian

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_NODE = os.path.join(ROOT, ".bench-node")
# What was measured; bump deliberately. sharp is pinned beside ipx (whose
# own range is ^0.34.3) so that npm resolves exactly this one.
PACKAGES = ("ipx@3.1.1", "sharp@0.34.5")
# sharp 0.34's own floor for Node (its package.json's "engines").
MIN_NODE_MAJOR = 18


def modules_dir(folder: str = BENCH_NODE) -> str:
    """Where ``npm install --prefix folder`` puts the packages."""
    return os.path.join(folder, "node_modules")


def install_command(folder: str = BENCH_NODE) -> list[str]:
    """The npm command that installs the pinned packages into ``folder``."""
    return [
        "npm", "install", "--prefix", folder, "--save-exact",
        "--no-audit", "--no-fund", "--loglevel", "error", *PACKAGES,
    ]  # fmt: skip


def node_major(version: str) -> int:
    """The major number of ``node --version``'s answer (``v20.20.2`` is 20)."""
    return int(version.strip().lstrip("v").split(".")[0])


def ensure_runtime() -> str:
    """``node`` and ``npm`` on the PATH (installed from Debian's ``nodejs``
    and ``npm`` when missing), ``node``'s version; RuntimeError if older
    than sharp supports."""
    debian.ensure_package("node", "nodejs")
    debian.ensure_package("npm", "npm")
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if node_major(version) < MIN_NODE_MAJOR:
        raise RuntimeError(f"node {version} is older than sharp's {MIN_NODE_MAJOR}")
    return version


def ensure_ipx(folder: str = BENCH_NODE) -> str:
    """Node and the pinned packages in ``folder``; its ``node_modules``."""
    ensure_runtime()
    stamp = os.path.join(folder, ".packages")
    wanted = "\n".join(PACKAGES)
    if os.path.isfile(stamp):
        with open(stamp) as handle:
            if handle.read() == wanted:
                return modules_dir(folder)
    print(f"bench: setting up {folder} ({', '.join(PACKAGES)})", file=sys.stderr)
    os.makedirs(folder, exist_ok=True)
    subprocess.run(install_command(folder), check=True)
    with open(stamp, "w") as handle:
        handle.write(wanted)
    return modules_dir(folder)


def skip_reason(folder: str = BENCH_NODE) -> str | None:
    """None once ipx is set up in ``folder``; else why it cannot be, in one line."""
    try:
        ensure_ipx(folder)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"ipx skipped: {reason}"
    return None


def node_binary() -> str:
    """The ``node`` that runs ipx."""
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is missing")
    return found
