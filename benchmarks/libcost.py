"""Scenario 1: what one render costs inside one process, libvips vs Pillow.

Run by ``benchmarks.run`` in a fresh process per library and image, under the
interpreter that has the library (the project venv for pyvips, the baseline
venv for Pillow), so that the peak RSS (``VmHWM``) is that render's own:

    python -m benchmarks.libcost --library vips --image DIR/x.jpg --repeat 3
    python -m benchmarks.libcost --library pillow --loop-seconds 5 --images a.jpg,b.png
    python -m benchmarks.libcost --library service --image DIR/x.png

``--image`` renders one image at ``--width``; ``--loop-seconds`` renders the
``--images`` at the load runs' own widths (``VariantPool``) instead;
``--stretch N`` renders exactly the N variants of the pool from ``--offset``
(what a load run's server answered); ``--handshake-variants N`` renders N
variants (``urls.spread_variants``) between two lines read from stdin, for
``benchmarks.lab.instructions``.

``vips`` is pyvips driven plainly (``thumbnail``); ``service`` is the
service's own render path (``service.render.render``, which for example
reduces wide PNGs along their lines first), in process, without HTTP.

Both sides do what their server does: fit inside ``--width`` (never
upscaling), keep the original's format unless ``--format`` says otherwise,
flatten alpha for JPEG, and encode with the same quality settings (the
service's defaults, passed by ``benchmarks.run``). libvips runs with one
thread per render, as the service does (``VIPS_CONCURRENCY=1``), and its
operation cache off; ``benchmarks.run`` starts the ``service`` side with the
allocator settings the service gives itself. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable

from .urls import Variant, VariantPool, spread_variants

# Overridden from the command line with the service's current defaults.
QUALITY = {"jpeg": 80, "webp": 80, "avif": 60}
AVIF_EFFORT = 0

Renderer = Callable[[str, int, str], bytes]


def output_format(path: str, requested: str) -> str:
    """The format a server would answer: the requested one, else the original's."""
    if requested != "original":
        return "jpeg" if requested == "jpg" else requested
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    return "jpeg" if extension in ("jpg", "jpeg") else extension


def vips_renderer() -> Renderer:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    import pyvips  # noqa: PLC0415 - only in the process that measures libvips

    pyvips.cache_set_max(0)

    def render(path: str, width: int, requested: str) -> bytes:
        fmt = output_format(path, requested)
        image = pyvips.Image.thumbnail(path, width, height=10_000_000, size="down")
        if fmt == "jpeg" and image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        options: dict[str, object] = {"keep": "none"}
        if fmt in QUALITY:
            options["Q"] = QUALITY[fmt]
        if fmt == "jpeg":
            options["optimize_coding"] = True
        if fmt == "avif":
            options["effort"] = AVIF_EFFORT
        data: bytes = image.write_to_buffer("." + fmt, **options)
        return data

    return render


def service_renderer(*, jpeg_shrink: str = "service") -> Renderer:
    """The service's render path in process; ``jpeg_shrink`` names the
    depth of JPEG shrink-on-load (``service``, ``libvips`` as before
    pipeline version 15, or ``fast``: geometry.ShrinkDepth)."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    import tempfile  # noqa: PLC0415

    from service import render as service_render  # noqa: PLC0415 - only where it is measured
    from service.formats import OutputFormat  # noqa: PLC0415

    service_render.configure_libvips()
    policy = service_render.RenderPolicy(
        quality={OutputFormat(name): q for name, q in QUALITY.items()},
        max_output_size=10**6,
        max_source_pixels=10**9,
        avif_effort=AVIF_EFFORT,
        timeout_seconds=600.0,
        jpeg_shrink_depth={
            "service": service_render.SERVICE_DEPTH,
            "libvips": service_render.LIBVIPS_DEPTH,
            "fast": service_render.FAST_DEPTH,
        }[jpeg_shrink],
    )
    # The service reads an original's header once per process (header_memo).
    remembered: dict[str, service_render.HeaderFacts] = {}

    def render(path: str, width: int, requested: str) -> bytes:
        request = service_render.RenderRequest(
            width=width,
            height=None,
            format=OutputFormat(output_format(path, requested)),
            background=(255, 255, 255, 255),
        )
        source = os.open(path, os.O_RDONLY)
        try:
            if path not in remembered:
                remembered[path] = service_render.read_facts(source, allow_svg=False)
            with tempfile.TemporaryFile() as out:
                service_render.render(policy, request, remembered[path], source, out.fileno())
                out.seek(0)
                return out.read()
        finally:
            os.close(source)

    return render


def pillow_renderer() -> Renderer:
    from PIL import Image  # noqa: PLC0415 - only in the process that measures Pillow

    names = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}

    def render(path: str, width: int, requested: str) -> bytes:
        fmt = output_format(path, requested)
        with Image.open(path) as opened:
            image: Image.Image = opened
            image.thumbnail((width, 10_000_000))  # draft() + LANCZOS, reducing_gap 2.0
            if fmt == "jpeg" and image.mode != "RGB":
                image = image.convert("RGB")
            out = io.BytesIO()
            options = {"quality": QUALITY[fmt]} if fmt in QUALITY else {}
            image.save(out, names[fmt], **options)
        return out.getvalue()

    return render


def parse_quality(text: str) -> dict[str, int]:
    """'jpeg=80,webp=80,avif=60' -> {'jpeg': 80, 'webp': 80, 'avif': 60}."""
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {name.strip().lower(): int(value) for name, value in pairs}


def peak_rss_kib() -> int:
    """This process's peak RSS since it started (exec'd), in KiB.

    ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over an exec
    from the forking parent, so a child of a large benchmark process would
    report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_image(
    render: Renderer, path: str, *, width: int, fmt: str, repeat: int, warmup: str | None
) -> dict[str, object]:
    if warmup:
        render(warmup, 64, "jpeg")  # load the library's code and codecs
    before = peak_rss_kib()
    timings = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = len(render(path, width, fmt))
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "ms": timings,
        "ms_median": statistics.median(timings),
        "peak_rss_mib": peak_rss_kib() / 1024,
        "idle_rss_mib": before / 1024,
        "output_bytes": size,
    }


def loop(
    render: Renderer,
    paths: list[str],
    *,
    fmt: str,
    seconds: float,
    offset: int,
    marks: bool = False,
) -> dict[str, object]:
    """Render the variants a load run asks for, from ``offset``, for about
    ``seconds``: the images round-robin at the pool's widths (``VariantPool``),
    so that the in-process figure and the HTTP runs render the same sizes.
    With ``marks``, also the wall and CPU seconds at the end of each render,
    so that a caller can take the first N renders alone."""
    pool = VariantPool(paths)
    ends = time.perf_counter() + seconds
    variants = map(pool.variant, itertools.count(offset))
    return _timed(
        render, itertools.takewhile(lambda _: time.perf_counter() < ends, variants), fmt, marks
    )


def stretch_loop(
    render: Renderer, paths: list[str], *, fmt: str, start: int, count: int, lane: int
) -> dict[str, object]:
    """Render exactly the ``count`` variants of the pool from ``start`` (the
    ones a load run's server answered), each once, from the ``lane``-th on
    and round: one process per core, each from its own lane, render the
    same work in different orders, and finish together."""
    pool = VariantPool(paths)
    return _timed(
        render, (pool.variant(start + (lane + step) % count) for step in range(count)), fmt
    )


def _timed(
    render: Renderer, variants: Iterable[Variant], fmt: str, marks: bool = False
) -> dict[str, object]:
    """Render ``variants``: how many, the wall time and the CPU time (and
    with ``marks`` both, cumulative, after each render)."""
    started = time.perf_counter()
    cpu_started = time.process_time()  # all threads: libvips' too
    count = 0
    after_each: list[tuple[float, float]] = []
    for variant in variants:
        render(variant.name, variant.width, fmt)
        count += 1
        if marks:
            after_each.append((time.perf_counter() - started, time.process_time() - cpu_started))
    result: dict[str, object] = {
        "renders": count,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }
    if marks:
        result["marks"] = after_each
    return result


def wait_for_start(render: Renderer, paths: list[str], *, fmt: str) -> None:
    """Render each image once at 64 px (every codec the loop will use is
    loaded then), print ``ready`` and block until a line arrives on stdin:
    ``benchmarks.lab.cores`` starts the loop and a load run at the same moment."""
    for path in dict.fromkeys(paths):
        render(path, 64, fmt)
    print("ready", flush=True)
    sys.stdin.readline()


def handshake(render: Renderer, paths: list[str], *, fmt: str, count: int) -> dict[str, object]:
    """Render ``count`` variants (``spread_variants``) between two lines of
    stdin, so that ``benchmarks.lab.instructions`` can read valgrind's counters
    before and after exactly those renders. First each image once at 64 px:
    that loads every codec the count must not include."""
    wait_for_start(render, paths, fmt=fmt)
    variants = spread_variants(paths, count)
    output_bytes = sum(len(render(v.name, v.width, fmt)) for v in variants)
    print(json.dumps({"renders": count, "output_bytes": output_bytes}), flush=True)
    sys.stdin.readline()
    return {"renders": count, "output_bytes": output_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", choices=("vips", "service", "pillow"), required=True)
    parser.add_argument("--image")
    parser.add_argument("--images", help="comma-separated, for --loop-seconds")
    parser.add_argument("--width", type=int, default=800, help="for --image")
    parser.add_argument("--format", default="original")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup")
    parser.add_argument("--loop-seconds", type=float)
    parser.add_argument("--handshake-variants", type=int, help="for benchmarks.lab.instructions")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--stretch", type=int, help="render this many variants from --offset")
    parser.add_argument("--lane", type=int, default=0, help="where in the stretch to begin")
    parser.add_argument(
        "--start-on-stdin",
        action="store_true",
        help="warm up, say 'ready', loop once a line arrives (benchmarks.lab.cores)",
    )
    parser.add_argument(
        "--marks",
        action="store_true",
        help="with --loop-seconds: wall and CPU seconds after each render (benchmarks.lab.cores)",
    )
    parser.add_argument("--quality", type=parse_quality, help="e.g. jpeg=80,webp=80,avif=60")
    parser.add_argument("--avif-effort", type=int)
    args = parser.parse_args()
    global AVIF_EFFORT  # noqa: PLW0603 - set once, before any render
    if args.quality:
        QUALITY.update(args.quality)
    if args.avif_effort is not None:
        AVIF_EFFORT = args.avif_effort
    renderers = {"vips": vips_renderer, "service": service_renderer, "pillow": pillow_renderer}
    render = renderers[args.library]()
    if args.handshake_variants:
        handshake(render, args.images.split(","), fmt=args.format, count=args.handshake_variants)
        return
    if args.stretch or args.loop_seconds:
        paths = args.images.split(",")
        if args.start_on_stdin:
            wait_for_start(render, paths, fmt=args.format)
        else:
            render(paths[0], 64, "jpeg")
        result = (
            stretch_loop(
                render,
                paths,
                fmt=args.format,
                start=args.offset,
                count=args.stretch,
                lane=args.lane,
            )
            if args.stretch
            else loop(
                render,
                paths,
                fmt=args.format,
                seconds=args.loop_seconds,
                offset=args.offset,
                marks=args.marks,
            )
        )
    else:
        result = measure_image(
            render,
            args.image,
            width=args.width,
            fmt=args.format,
            repeat=args.repeat,
            warmup=args.warmup,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
