"""What blur, sharpen and trim cost against a plain resize of the same original.

    .venv/bin/python -m benchmarks.lab.filters [--dir .bench-corpus] [--rounds 5]

For each original, the service's render path (``service.render.render``,
in process, no HTTP) renders the same output (``--width`` px wide, JPEG at
the default quality) plainly and with each filter. Every variant runs in a
fresh process, so that its peak RSS (``VmHWM``) is its own, rendering
``--renders`` times; a round runs every variant once, in an order that
turns from round to round, and the figures are medians over the rounds:

- renders/s: wall clock, which a shared machine moves by 10-40 %;
- CPU ms per render (this process's, the libvips threads included), and
  the ratio to the plain render's in the same round: the figure to judge
  (the issue allows 1.5x for blur and sharpen; trim reads the whole image);
- peak RSS, and the part of it above the process before its first render.

``sharpen-libvips`` is the same request with libvips' own ``sharpen`` (in
LabS) in place of the service's (``render/sharpen.py`` says why it is
not used). Originals: ``--images``, else the benchmark corpus's photos
under ``--dir`` (``python -m benchmarks.corpus``), else the samples.
Prints a Markdown table per original.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ..corpus import DEFAULT_DIR
from ..libcost import QUALITY, peak_rss_kib

# The request each variant adds to the plain one.
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "blur=2": {"blur": 2.0},
    "blur=20": {"blur": 20.0},
    "blur=50": {"blur": 50.0},
    "sharpen=1": {"sharpen": 1.0},
    "sharpen=5": {"sharpen": 5.0},
    "sharpen-libvips=1": {"sharpen": 1.0},
    "trim=10": {"trim": 10},
}
CORPUS_PHOTOS = ("raindrops.jpg", "free.jpg", "kleiber.jpg", "gulp.png")
SAMPLES = ("retina.jpg", "chelsea.png")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(path: str, variant: str, width: int, renders: int) -> dict[str, float]:
    """In the variant's own process: render ``renders`` times, measure."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    from service import render as service  # noqa: PLC0415 - only in the measuring process
    from service.formats import OutputFormat  # noqa: PLC0415

    service.configure_libvips()
    if variant.startswith("sharpen-libvips"):
        _use_libvips_sharpen()
    policy = service.RenderPolicy(
        quality={OutputFormat(name): q for name, q in QUALITY.items()},
        max_output_size=10**6,
        max_source_pixels=10**9,
        avif_effort=0,
        timeout_seconds=600.0,
    )
    request = service.RenderRequest(
        width=width,
        height=None,
        format=OutputFormat.JPEG,
        background=(255, 255, 255, 255),
        **VARIANTS[variant],
    )
    with open(path, "rb") as original:
        facts = service.read_facts(original.fileno(), allow_svg=False)
    idle = rss_kib()
    walls, cpus = [], []
    for _ in range(renders):
        source = os.open(path, os.O_RDONLY)
        try:
            with tempfile.TemporaryFile() as out:
                wall, cpu = time.perf_counter(), time.process_time()
                service.render(policy, request, facts, source, out.fileno())
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        finally:
            os.close(source)
    peak = peak_rss_kib()
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "peak_mib": peak / 1024,
        "above_idle_mib": (peak - idle) / 1024,
    }


def _use_libvips_sharpen() -> None:
    """Swap the service's unsharp mask for libvips' sharpen (LabS), with
    the service's slopes, for comparison."""
    import pyvips  # noqa: PLC0415

    from service.render import sharpen  # noqa: PLC0415

    def libvips(image: pyvips.Image, sigma: float) -> pyvips.Image:
        return image.sharpen(sigma=sigma, m1=1.0, m2=2.0)

    sharpen.unsharp = libvips


def run_child(path: str, variant: str, width: int, renders: int) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.lab.filters", "--child", variant]
    command += ["--images", path, "--width", str(width), "--renders", str(renders)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    path: str, width: int, rounds: int, renders: int, variants: list[str]
) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    for round_index in range(rounds):
        turn = round_index % len(variants)
        for variant in variants[turn:] + variants[:turn]:
            results[variant].append(run_child(path, variant, width, renders))
    return results


def table(name: str, results: dict[str, list[dict[str, float]]]) -> str:
    def median(variant: str, field: str, of: Callable[[float], float] = lambda x: x) -> float:
        return statistics.median(of(run[field]) for run in results[variant])

    plain = results["plain"]
    lines = [
        f"### {name}",
        "",
        "| variant | renders/s | CPU ms/render | CPU x plain | peak RSS MiB | above idle MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, runs in results.items():
        ratios = [run["cpu_ms"] / base["cpu_ms"] for run, base in zip(runs, plain, strict=True)]
        lines.append(
            f"| {variant} | {median(variant, 'wall_ms', lambda ms: 1000 / ms):.1f} "
            f"| {median(variant, 'cpu_ms'):.1f} | {statistics.median(ratios):.2f} "
            f"| {median(variant, 'peak_mib'):.0f} | {median(variant, 'above_idle_mib'):.0f} |"
        )
    return "\n".join(lines)


def default_images(directory: str) -> list[str]:
    corpus = os.path.join(directory, "originals")
    found = [os.path.join(corpus, name) for name in CORPUS_PHOTOS]
    if all(os.path.exists(path) for path in found):
        return found
    samples = os.path.join(os.path.dirname(__file__), "..", "..", "service", "samples")
    return [os.path.normpath(os.path.join(samples, name)) for name in SAMPLES]


def describe(path: str) -> str:
    import pyvips  # noqa: PLC0415

    header = pyvips.Image.new_from_file(path, access="sequential")
    megapixels = header.width * header.height / 1e6
    return f"{os.path.basename(path)} ({header.width}x{header.height}, {megapixels:.1f} MP)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", default=DEFAULT_DIR, help="the benchmark corpus")
    parser.add_argument("--images", default="", help="comma-separated originals")
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--renders", type=int, default=5, help="per variant and round")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    images = [path for path in args.images.split(",") if path] or default_images(args.dir)
    if args.child:
        print(json.dumps(child(images[0], args.child, args.width, args.renders)))
        return
    variants = ["plain", *(v for v in args.variants.split(",") if v and v != "plain")]
    print(
        f"{args.width} px JPEG outputs; medians of {args.rounds} rounds of "
        f"{args.renders} renders per variant, each variant in its own process.\n"
    )
    for path in images:
        results = measure(path, args.width, args.rounds, args.renders, variants)
        print(table(describe(path), results), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
