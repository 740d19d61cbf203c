"""sharp's side: Node and sharp in ``.bench-node-quality/``, ``sharp_encode.mjs``.

sharp is pinned to what ipx 3.1.1 runs (0.34.5); Node and npm come from
Debian's packages when missing (``benchmarks.debian``). Installed once with
``npm install --prefix``; the folder is git-ignored.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

from .. import debian
from ..competitors import ROOT

SHARP = "sharp@0.34.5"
FOLDER = os.path.join(ROOT, ".bench-node-quality")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sharp_encode.mjs")


@dataclass(frozen=True, slots=True)
class Job:
    """One sharp encode: ``reference`` PNG to ``output``."""

    reference: str
    format: str
    options: dict[str, object]
    output: str


def ensure(folder: str = FOLDER) -> str:
    """The node_modules folder with sharp, installed when missing."""
    modules = os.path.join(folder, "node_modules")
    stamp = os.path.join(folder, ".installed")
    if os.path.isfile(stamp):
        with open(stamp) as handle:
            if handle.read() == SHARP:
                return modules
    debian.ensure_package("node", "nodejs")
    debian.ensure_package("npm", "npm")
    print(f"quality: installing {SHARP} into {folder}", file=sys.stderr)
    os.makedirs(folder, exist_ok=True)
    npm = ["npm", "install", "--prefix", folder, "--no-audit", "--no-fund", "--silent", SHARP]
    subprocess.run(npm, check=True)
    with open(stamp, "w") as handle:
        handle.write(SHARP)
    return modules


def encode(jobs: list[Job], repeat: int, workdir: str) -> tuple[list[float], dict[str, object]]:
    """Run ``jobs``: the median encode ms of each, and sharp's versions."""
    modules = ensure()
    listing = os.path.join(workdir, "sharp-jobs.json")
    with open(listing, "w") as handle:
        json.dump(
            [
                {"input": j.reference, "format": j.format, "options": j.options,
                 "output": j.output, "repeat": repeat}
                for j in jobs
            ],
            handle,
        )  # fmt: skip
    out = subprocess.run(
        ["node", SCRIPT, modules, listing], capture_output=True, text=True, check=True
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    times = [statistics.median(result["ms"]) for result in answer["results"]]
    about = {"versions": answer["versions"], "concurrency": answer["concurrency"]}
    return times, about
