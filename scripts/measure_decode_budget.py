"""Measure what the decode budget does to concurrent renders of large
progressive JPEGs: peak RSS of the service, and how long they take.

    .venv/bin/python scripts/measure_decode_budget.py [--megapixels 100] [--rounds 3]

Generates progressive JPEGs of ``--megapixels`` (a real photo from the test
corpus, upscaled; 4:2:0 like camera files), starts ``python -m service`` on
loopback with 2 render threads once per budget and round (budgets alternate
within a round), sends ``--requests`` concurrent requests for distinct
800-px variants of them, samples the process's RSS from /proc every 5 ms and
prints the medians over rounds. Budgets: ``--decode-budget 512MB`` (the
default) and ``1TB`` (in effect none: the renders run side by side).
"""
# ruff: noqa: S310, S603

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyvips

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(ROOT))  # this checkout's service, however it is installed
from service.pipeline import decode_memory  # noqa: E402

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the service exited at start")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the service did not become healthy")


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def one_round(originals: Path, budget: str, names: list[str], requests: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as cache:
        argv = [sys.executable, "-m", "service", "--port", str(port), "--originals"]
        argv += [os.fspath(originals), "--cache-dir", cache, "--concurrency", "2"]
        argv += ["--decode-budget", budget, "--max-source-bytes", "1GB"]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, process)
            idle = rss_mib(process.pid)
            peak = idle
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_mib(process.pid))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()
            urls = [
                f"{base}/picture/{names[index % len(names)]}?w={800 + index}"
                for index in range(requests)
            ]
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(requests) as pool:
                statuses = list(pool.map(fetch, urls))
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
        finally:
            process.terminate()
            process.wait(30)
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses {statuses}")
    return {"seconds": elapsed, "idle_mib": idle, "peak_mib": peak}


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
        need = decode_memory(descriptor)
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
