"""Measure what the decode budget does to concurrent renders of large
progressive JPEGs: peak RSS of the service, and how long they take.

    .venv/bin/python scripts/measure_decode_budget.py [--megapixels 100] [--rounds 3]

Generates progressive JPEGs of ``--megapixels`` (a real photo from the test
corpus, upscaled; 4:2:0 like camera files), starts ``python -m service`` on
loopback with 2 render threads once per budget and round (budgets alternate
within a round) the way the benchmark suite starts it, sends ``--requests``
concurrent requests for distinct 800-px variants of them, samples the
process's RSS every 5 ms and prints the medians over rounds. Budgets: ``--decode-budget 512MB`` (the
default) and ``1TB`` (in effect none: the renders run side by side).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyvips

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(ROOT))  # this checkout's service, however it is installed
from benchmarks import competitors, proctree  # noqa: E402
from service.render import read_facts  # noqa: E402

PHOTO = ROOT / "tests" / "corpus" / "conformance" / "exif_landscape_1.jpg"
BUDGETS = {"512MB (default)": "512MB", "none (1TB)": "1TB"}


def make_originals(directory: Path, megapixels: float, count: int) -> list[str]:
    photo = pyvips.Image.new_from_file(os.fspath(PHOTO))
    scale = math.sqrt(megapixels * 1e6 / (photo.width * photo.height))
    big = photo.resize(scale, kernel="lanczos3")
    names = []
    for index in range(count):
        name = f"progressive-{index}.jpg"
        # Distinct files (a flipped copy), so no render shares another's work.
        image = big.flip("horizontal") if index % 2 else big
        path = os.fspath(directory / name)
        image.write_to_file(path, Q=90, interlace=True, subsample_mode="on")
        names.append(name)
    return names


def one_round(originals: Path, budget: str, names: list[str], requests: int) -> dict[str, float]:
    """One service with ``budget`` (through its environment variable), the
    suite's own start, stop and RSS sampling (benchmarks.competitors,
    benchmarks.proctree)."""
    with tempfile.TemporaryDirectory() as workdir:
        server = competitors.start_service(
            os.fspath(originals),
            workdir,
            workers=1,
            concurrency=2,
            env={"IMAGE_FACTORY_DECODE_BUDGET": budget},
        )
        try:
            server.wait_ready()
            idle = proctree.rss_bytes(server.pid) / 2**20
            urls = [
                f"{server.base_url}/picture/{names[index % len(names)]}?w={800 + index}"
                for index in range(requests)
            ]
            with proctree.Sampler(server.pid, interval=0.005) as sampler:
                started = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(requests) as pool:
                    statuses = [status for status, _, _ in pool.map(competitors.fetch, urls)]
                elapsed = time.monotonic() - started
        finally:
            server.stop()
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses {statuses}")
    return {"seconds": elapsed, "idle_mib": idle, "peak_mib": sampler.peak.rss_bytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        originals = Path(scratch)
        names = make_originals(originals, args.megapixels, 2)
        path = originals / names[0]
        header = pyvips.Image.new_from_file(os.fspath(path))
        descriptor = os.open(path, os.O_RDONLY)
        need = read_facts(descriptor, allow_svg=False).decode_bytes
        os.close(descriptor)
        print(
            f"{header.width}x{header.height} progressive JPEGs "
            f"({header.get('jpeg-chroma-subsample')}, decode estimate {need / 2**20:.0f} MiB), "
            f"{args.requests} at once"
        )
        results: dict[str, list[dict[str, float]]] = {label: [] for label in BUDGETS}
        for _ in range(args.rounds):
            for label, budget in BUDGETS.items():
                results[label].append(one_round(originals, budget, names, args.requests))
    print("| decode budget | peak RSS MiB | above idle MiB | seconds for all |")
    print("|---|---|---|---|")
    for label, rounds in results.items():
        peak = statistics.median(r["peak_mib"] for r in rounds)
        above = statistics.median(r["peak_mib"] - r["idle_mib"] for r in rounds)
        seconds = statistics.median(r["seconds"] for r in rounds)
        print(f"| {label} | {peak:.0f} | {above:.0f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
