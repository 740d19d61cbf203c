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
service. Time: one process per round renders both sides alternately, render
by render, so that the machine's noise falls on both alike; peak RSS
(``VmHWM``): a fresh process per side and round, the overlay file loaded
only on its side. Children run with the allocator settings the service
gives itself. The table quotes medians over the rounds, and the ratios
overlay/plain of time per render and of peak RSS. Prints Markdown.
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
from collections.abc import Callable
from pathlib import Path

from service.process.allocator import is_glibc, tuned_environment

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
        # Not resized, its frames keep their own 256 colours, and the GIF
        # encoder's work grows with every colour added to them (a 4x4 block
        # of one new colour per frame: +34 %); an overlay adds hundreds.
        "animated-10.gif at 320 px": (gif, 320),
    }


def _renderer(image: str, width: int, overlays: str | None) -> Callable[[bool], None]:
    """A function rendering ``image`` to ``width`` px, with the overlay or
    without, through the service's render path."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    from service import render  # noqa: PLC0415
    from service.formats import OutputFormat  # noqa: PLC0415
    from service.overlays import load_overlays  # noqa: PLC0415

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
    requests = {
        marked: render.RenderRequest(
            width=width,
            height=None,
            format=None,  # the original's own
            background=(255, 255, 255, 255),
            overlay="logo" if marked else None,
        )
        for marked in (False, True)
    }
    source = os.open(image, os.O_RDONLY)
    facts = render.read_facts(source, allow_svg=False)

    def once(marked: bool) -> None:
        with tempfile.TemporaryFile() as target:
            os.lseek(source, 0, os.SEEK_SET)
            render.render(policy, requests[marked], facts, source, target.fileno())

    return once


def time_child(image: str, width: int, overlays: str, seconds: float) -> dict[str, float]:
    """Renders per second of each side, alternating render by render in
    this one process, so that the machine's noise falls on both alike."""
    once = _renderer(image, width, overlays)
    once(False)
    once(True)  # warm: codecs loaded, the overlay's size in its LRU
    spent = {False: 0.0, True: 0.0}
    renders = 0
    while sum(spent.values()) < 2 * seconds or renders < 3:
        for marked in (False, True) if renders % 2 == 0 else (True, False):
            started = time.perf_counter()
            once(marked)
            spent[marked] += time.perf_counter() - started
        renders += 1
    return {"plain": renders / spent[False], "overlay": renders / spent[True]}


def rss_child(image: str, width: int, overlays: str | None, renders: int) -> dict[str, float]:
    """Peak RSS of a fresh process rendering one side ``renders`` times
    (the overlay file loaded only on the overlay's side)."""
    from ..libcost import peak_rss_kib  # noqa: PLC0415

    once = _renderer(image, width, overlays)
    for _ in range(renders):
        once(overlays is not None)
    return {"peak_rss_mib": peak_rss_kib() / 1024}


def _child(*arguments: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.lab.overlay_cost", *arguments]
    # The allocator settings the service gives itself (process/allocator.py).
    environment = tuned_environment(os.environ, glibc=is_glibc()) or dict(os.environ)
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=900, env=environment
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per side and round")
    parser.add_argument("--rss-renders", type=int, default=5, help="per RSS process")
    parser.add_argument(
        "--images", default="", help="more originals, comma-separated, rendered at 800 px"
    )
    parser.add_argument("--child", choices=("time", "rss"), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--overlays", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=WIDTH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "time":
        print(json.dumps(time_child(args.image, args.width, args.overlays, args.seconds)))
        return
    if args.child == "rss":
        print(json.dumps(rss_child(args.image, args.width, args.overlays, args.rss_renders)))
        return
    with tempfile.TemporaryDirectory(prefix="overlay-cost-") as directory:
        inputs = make_inputs(Path(directory))
        for extra in filter(None, args.images.split(",")):
            inputs[os.path.basename(extra)] = (Path(extra), WIDTH)
        overlays = str(Path(directory) / "overlays.toml")
        print(
            f"{args.rounds} rounds: {args.seconds:g} s per side rendering alternately in one "
            f"process; peak RSS of a fresh process per side ({args.rss_renders} renders)\n"
        )
        print("| original | plain renders/s | overlay renders/s | time ratio "
              "| plain peak RSS MiB | overlay peak RSS MiB | RSS ratio |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for name, (image, width) in inputs.items():
            common = ["--image", str(image), "--width", str(width)]
            rates: dict[str, list[float]] = {"plain": [], "overlay": []}
            peaks: dict[str, list[float]] = {"plain": [], "overlay": []}
            for index in range(args.rounds):
                timed = _child("--child", "time", *common, "--overlays", overlays,
                               "--seconds", str(args.seconds))  # fmt: skip
                for side, values in rates.items():
                    values.append(timed[side])
                sides: list[tuple[str, list[str]]] = [
                    ("plain", []),
                    ("overlay", ["--overlays", overlays]),
                ]
                for side, extra in sides if index % 2 == 0 else sides[::-1]:
                    measured = _child("--child", "rss", *common, *extra,
                                      "--rss-renders", str(args.rss_renders))  # fmt: skip
                    peaks[side].append(measured["peak_rss_mib"])
            rate = [statistics.median(rates[side]) for side in ("plain", "overlay")]
            rss = [statistics.median(peaks[side]) for side in ("plain", "overlay")]
            print(
                f"| {name} | {rate[0]:.1f} | {rate[1]:.1f} | {rate[0] / rate[1]:.3f}x "
                f"| {rss[0]:.1f} | {rss[1]:.1f} | {rss[1] / rss[0]:.3f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
