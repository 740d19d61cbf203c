"""What an overlay costs: a render with one against the same render without.

    .venv/bin/python -m benchmarks.lab.overlay_cost [--rounds 5] [--seconds 3]

For each original (the bundled samples' largest photo, a generated 12 MP
camera-sized JPEG, a PNG, and a generated 10-frame animated GIF), renders
to the same output (800 px wide, the animation 160 px, and once at its own
320 px; the original's format, the GIF animated) with the service's own
render path (``service.render.render``,
in process, no HTTP), with and without ``overlay=logo``: a 600x150 PNG
with alpha, 0.25 of the output's width, opacity 0.6, south-east, 8 px
margin, the overlay's resized copy already in its LRU as in a running
service. Each (case, side) runs in a fresh process, so that its peak RSS
(``VmHWM``) is its own; the sides alternate in each round (the machine's
noise moves both) and the table quotes medians over the rounds, and the
ratios overlay/plain of time per render and of peak RSS. Prints Markdown.
``--images`` adds originals of your own (e.g. the benchmark corpus's
photos) at 800 px.
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
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "service" / "samples"
WIDTH = 800
OVERLAY_TOML = """
[logo]
image = "logo.png"
gravity = "south-east"
margin = 8
opacity = 0.6
width = 0.25
"""


def make_inputs(directory: Path) -> dict[str, tuple[Path, int]]:
    """The originals and the overlay, generated where the samples lack them."""
    import pyvips  # noqa: PLC0415 - only in the processes that render

    photo = pyvips.Image.gaussnoise(4000, 3000, sigma=60, mean=128).gaussblur(3)
    photo = photo.bandjoin(photo.rot180()).bandjoin(photo.fliphor()).cast("uchar")
    photo.copy(interpretation="srgb").write_to_file(str(directory / "camera-12mp.jpg"), Q=90)
    frames = [
        pyvips.Image.gaussnoise(320, 240, sigma=80, mean=40 + 8 * index).gaussblur(4)
        for index in range(10)
    ]
    strip = pyvips.Image.arrayjoin(frames, across=1)
    strip = strip.bandjoin(strip.flipver()).bandjoin(strip.fliphor()).cast("uchar")
    strip = strip.copy(interpretation="srgb")  # colours: a palette of 256 per frame
    strip.set_type(pyvips.GValue.gint_type, "page-height", 240)
    strip.write_to_file(str(directory / "animated-10.gif"))
    logo = pyvips.Image.xyz(600, 150)[0].cast("uchar")  # a ramp: a real logo's edges
    alpha = (pyvips.Image.xyz(600, 150)[1] * 255 / 150).cast("uchar")
    logo.bandjoin(255 - logo).bandjoin(logo).bandjoin(alpha).copy(
        interpretation="srgb"
    ).write_to_file(str(directory / "logo.png"))
    (directory / "overlays.toml").write_text(OVERLAY_TOML)
    gif = directory / "animated-10.gif"
    return {
        "retina.jpg (2 MP)": (SAMPLES / "retina.jpg", WIDTH),
        "camera-12mp.jpg": (directory / "camera-12mp.jpg", WIDTH),
        "camera-12mp.jpg at 4000 px": (directory / "camera-12mp.jpg", 4000),
        "camera.png (512 px)": (SAMPLES / "camera.png", WIDTH),
        "animated-10.gif to 160 px": (gif, 160),
        # Not resized, its frames keep their own palettes and the GIF
        # encoder skips quantising; the overlay's blended colours make it
        # quantise every frame.
        "animated-10.gif at 320 px": (gif, 320),
    }


def child(image: str, width: int, overlays: str | None, seconds: float) -> dict[str, float]:
    """One side of one case, in this (fresh) process."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    from service import render  # noqa: PLC0415
    from service.formats import OutputFormat  # noqa: PLC0415
    from service.overlays import load_overlays  # noqa: PLC0415

    from ..libcost import peak_rss_kib  # noqa: PLC0415

    render.configure_libvips()
    library = render.OverlayLibrary(load_overlays(overlays)) if overlays else None
    policy = render.RenderPolicy(
        quality={OutputFormat.JPEG: 80, OutputFormat.WEBP: 80, OutputFormat.AVIF: 60},
        max_output_size=4096,
        max_source_pixels=10**9,
        avif_effort=0,
        timeout_seconds=600.0,
        overlays=library,
    )
    request = render.RenderRequest(
        width=width,
        height=None,
        format=None,  # the original's own
        background=(255, 255, 255, 255),
        overlay="logo" if overlays else None,
    )
    source = os.open(image, os.O_RDONLY)
    facts = render.read_facts(source, allow_svg=False)

    def once() -> None:
        with tempfile.TemporaryFile() as target:
            os.lseek(source, 0, os.SEEK_SET)
            render.render(policy, request, facts, source, target.fileno())

    once()  # warm: codecs loaded, the overlay's size in the LRU
    idle = peak_rss_kib()
    renders, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or renders < 3:
        once()
        renders += 1
    elapsed = time.perf_counter() - started
    return {
        "renders_per_s": renders / elapsed,
        "peak_rss_mib": peak_rss_kib() / 1024,
        "warm_rss_mib": idle / 1024,
    }


def run_side(image: Path, width: int, overlays: Path | None, seconds: float) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.lab.overlay_cost", "--child", str(image)]
    command += ["--width", str(width), "--seconds", str(seconds)]
    if overlays is not None:
        command += ["--overlays", str(overlays)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per side and round")
    parser.add_argument(
        "--images", default="", help="more originals, comma-separated, rendered at 800 px"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--overlays", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=WIDTH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.width, args.overlays, args.seconds)))
        return
    with tempfile.TemporaryDirectory(prefix="overlay-cost-") as directory:
        inputs = make_inputs(Path(directory))
        for extra in filter(None, args.images.split(",")):
            inputs[os.path.basename(extra)] = (Path(extra), WIDTH)
        overlays = Path(directory) / "overlays.toml"
        print(f"{args.rounds} rounds of {args.seconds:g} s per side\n")
        print("| original | plain renders/s | overlay renders/s | time ratio "
              "| plain peak RSS MiB | overlay peak RSS MiB | RSS ratio |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for name, (image, width) in inputs.items():
            plain: list[dict[str, float]] = []
            marked: list[dict[str, float]] = []
            for index in range(args.rounds):
                sides = [(plain, None), (marked, overlays)]
                for results, toml in sides if index % 2 == 0 else sides[::-1]:
                    results.append(run_side(image, width, toml, args.seconds))
            rate = [statistics.median(r["renders_per_s"] for r in side) for side in (plain, marked)]
            rss = [statistics.median(r["peak_rss_mib"] for r in side) for side in (plain, marked)]
            print(
                f"| {name} | {rate[0]:.1f} | {rate[1]:.1f} | {rate[0] / rate[1]:.3f}x "
                f"| {rss[0]:.1f} | {rss[1]:.1f} | {rss[1] / rss[0]:.3f}x |"
            )


if __name__ == "__main__":
    main()
