"""Tools the suite runs that come from Debian's packages (wrk, valgrind),
installed through apt-get when missing, as root; never by hand."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_package(binary: str, package: str) -> None:
    """Install ``package`` when ``binary`` is not on the PATH."""
    if shutil.which(binary) is not None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{binary} is missing: install it (Debian/Ubuntu: apt-get install {package})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
