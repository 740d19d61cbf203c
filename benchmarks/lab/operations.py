"""What crop, rotate, flip and fp cost against a plain resize, in process.

    .venv/bin/python -m benchmarks.lab.operations [--rounds 5] [--renders 12]

Issue 20 holds each operation within 1.5x of a plain resize to the same
output, in renders/s and in peak RSS: for a crop, a plain resize of an
original the size of the crop; for rotate, flip and fp, of the same
original. The originals are made here, in a temporary directory: a
6000x4000 baseline JPEG (Q90, 4:2:0) tiled from the bundled sample photos
at their own size (real photographic detail, not noise or an upscale),
and each crop's rectangle of it saved alike as its own original.

Each measurement is a fresh process (``--child``) that renders once to
warm up, then ``--renders`` times through the service's render path
(``service.render.render``, to JPEG at the default quality, into a
temporary file): its renders/s and its peak RSS (``VmHWM``). A round runs
every case's operation and its plain counterpart one after the other, in
alternating order; the table gives medians over the rounds and the
ratios (renders/s: plain over operation, so above 1 is slower; RSS:
operation over plain). Run it on an idle machine: a busy one moves a
case by 10-30 % between rounds.
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
from dataclasses import dataclass
from typing import Any

SIZE = (6000, 4000)
QUALITY = 80  # the service's JPEG default


@dataclass(frozen=True)
class Render:
    """One render: an original (by name in the work directory) and the
    RenderRequest's fields (``crop`` as x,y,w,h)."""

    original: str
    request: dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    operation: Render
    plain: Render


LARGE_CROP = (500, 400, 4800, 3200)
# A JPEG decodes every row above a crop: one near the bottom, one at the top.
SMALL_CROP = (3000, 2500, 1200, 800)
TOP_CROP = (3000, 0, 1200, 800)
CASES = [
    Case(
        "crop 4800x3200 of 6000x4000 to 400 px",
        Render("big.jpg", {"width": 400, "crop": LARGE_CROP}),
        Render("large-crop.jpg", {"width": 400}),
    ),
    Case(
        "crop 1200x800 low in 6000x4000 to 400 px",
        Render("big.jpg", {"width": 400, "crop": SMALL_CROP}),
        Render("small-crop.jpg", {"width": 400}),
    ),
    Case(
        "(the same crop, against the whole original to 400 px)",
        Render("big.jpg", {"width": 400, "crop": SMALL_CROP}),
        Render("big.jpg", {"width": 400}),
    ),
    Case(
        "crop 1200x800 at the top of 6000x4000 to 400 px",
        Render("big.jpg", {"width": 400, "crop": TOP_CROP}),
        Render("top-crop.jpg", {"width": 400}),
    ),
    Case(
        # The same output pixels: rotate=90&w=400 is h=400 turned.
        "rotate=90, 6000x4000 to 400 px (plain: h=400)",
        Render("big.jpg", {"width": 400, "rotate": 90}),
        Render("big.jpg", {"height": 400}),
    ),
    Case(
        "flip=hv, 6000x4000 to 400 px",
        Render("big.jpg", {"width": 400, "flip": "hv"}),
        Render("big.jpg", {"width": 400}),
    ),
    Case(
        "fp=0.3,0.6 cover 400x400 (plain: centre)",
        Render("big.jpg", {"width": 400, "height": 400, "fit": "cover", "fp": (0.3, 0.6)}),
        Render("big.jpg", {"width": 400, "height": 400, "fit": "cover"}),
    ),
]


def make_originals(directory: str) -> None:
    """big.jpg, and each crop's rectangle of it as its own original."""
    import pyvips  # noqa: PLC0415 - only the processes that use libvips import it

    samples = os.path.join(os.path.dirname(__file__), "..", "..", "service", "samples")
    photos = [
        pyvips.Image.new_from_file(os.path.join(samples, name)).colourspace("srgb")[0:3]
        for name in ("retina.jpg", "rocket.jpg", "chelsea.png", "camera.png")
    ]
    tiles = [photos[index % len(photos)] for index in range(30)]
    mosaic = pyvips.Image.arrayjoin(tiles, across=6, shim=0)
    big = mosaic.thumbnail_image(SIZE[0], height=SIZE[1], crop="centre")
    options = {"Q": 90, "subsample_mode": "on", "keep": "none"}
    big.write_to_file(os.path.join(directory, "big.jpg"), **options)
    for name, (left, top, width, height) in (
        ("large-crop.jpg", LARGE_CROP),
        ("small-crop.jpg", SMALL_CROP),
        ("top-crop.jpg", TOP_CROP),
    ):
        big.crop(left, top, width, height).write_to_file(os.path.join(directory, name), **options)


def child(directory: str, render: Render, renders: int) -> dict[str, float]:
    """In a fresh process: renders/s and peak RSS of ``render``."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    from service import render as service_render  # noqa: PLC0415
    from service.formats import OutputFormat  # noqa: PLC0415
    from service.spec import Crop, Fit, Flip  # noqa: PLC0415

    from ..libcost import peak_rss_kib  # noqa: PLC0415

    service_render.configure_libvips()
    policy = service_render.RenderPolicy(
        quality={OutputFormat.JPEG: QUALITY},
        max_output_size=4096,
        max_source_pixels=10**9,
        avif_effort=0,
        timeout_seconds=600.0,
    )
    fields = dict(render.request)
    if "crop" in fields:
        fields["crop"] = Crop(*fields["crop"])
    if "flip" in fields:
        fields["flip"] = Flip(fields["flip"])
    if "fit" in fields:
        fields["fit"] = Fit(fields["fit"])
    if "fp" in fields:
        fields["focal_point"] = tuple(fields.pop("fp"))
    fields.setdefault("width", None)
    fields.setdefault("height", None)
    request = service_render.RenderRequest(
        format=OutputFormat.JPEG, background=(255, 255, 255, 255), **fields
    )
    path = os.path.join(directory, render.original)
    source = os.open(path, os.O_RDONLY)
    facts = service_render.read_facts(source, allow_svg=False)

    def once() -> None:
        with tempfile.TemporaryFile() as out:
            service_render.render(policy, request, facts, source, out.fileno())

    once()
    started = time.perf_counter()
    for _ in range(renders):
        once()
    seconds = time.perf_counter() - started
    os.close(source)
    return {"renders_per_second": renders / seconds, "peak_rss_mib": peak_rss_kib() / 1024}


def measure(directory: str, render: Render, renders: int) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.lab.operations", "--child", directory]
    command += ["--renders", str(renders), "--render", json.dumps(render.__dict__)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--renders", type=int, default=12)
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--render", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Render(**json.loads(args.render)), args.renders)))
        return
    with tempfile.TemporaryDirectory(prefix="operations-") as directory:
        make_originals(directory)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for case in CASES:
                sides = [("operation", case.operation), ("plain", case.plain)]
                for side, render in sides if round_ % 2 == 0 else sides[::-1]:
                    results.setdefault((case.name, side), []).append(
                        measure(directory, render, args.renders)
                    )
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    print(f"\n{args.rounds} rounds of {args.renders} renders, medians:\n")
    print("| case | renders/s | plain | slower | peak RSS | plain | ratio |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        operation, plain = (_medians(results[(case.name, side)]) for side in ("operation", "plain"))
        speed = plain["renders_per_second"] / operation["renders_per_second"]
        memory = operation["peak_rss_mib"] / plain["peak_rss_mib"]
        print(
            f"| {case.name} | {operation['renders_per_second']:.1f} | "
            f"{plain['renders_per_second']:.1f} | {speed:.2f}x | "
            f"{operation['peak_rss_mib']:.0f} MiB | {plain['peak_rss_mib']:.0f} MiB | "
            f"{memory:.2f}x |"
        )


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


if __name__ == "__main__":
    main()
