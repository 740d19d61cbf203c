"""libvips tuning measurements behind the service's defaults.

    python -m benchmarks.lab.tuning [--seconds 6] [--only threads,avif,jpeg,png]

In-process, over the benchmark corpus (``python -m benchmarks.corpus``):
- ``threads``: libvips threads per render (``VIPS_CONCURRENCY``) x renders
  at once (a thread pool), and the allocator (``MALLOC_ARENA_MAX``):
  renders/s over the mix and the process's peak RSS;
- ``avif``, ``webp``: encoder effort at the service's quality: ms and bytes;
- ``jpeg``: JPEG save options (``optimize_coding``, ``interlace``,
  ``trellis_quant``): ms and bytes;
- ``png``: PNG ``compression`` and ``filter``, in the service's three kinds of
  original (opaque photographs, drawn images, images with alpha; ``--pngs``
  for your own): ms and bytes.
Each configuration runs in its own process (the environment is read when
libvips starts). Prints Markdown tables; the numbers in
``docs/quality.md`` and ``docs/benchmarks-journal.md`` come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

# Each configuration runs in a child process whose environment (read by
# libvips when it starts) the parent sets.
import pyvips

from service.render.header import is_drawn
from service.render.save import png_save_options

from .. import corpus
from ..competitors import ROOT, service_defaults
from ..libcost import peak_rss_kib

WIDTH = 800
ARENA2 = {"VIPS_CONCURRENCY": "1", "MALLOC_ARENA_MAX": "2"}


def _worker(config: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: run one configuration, return its figures."""
    pyvips.cache_set_max(0)
    paths: list[str] = config["paths"]
    if config["kind"] == "threads":
        return _throughput(paths, config["parallel"], config["seconds"])
    return _encode(paths, config["suffix"], config["options"], config["repeat"])


def _throughput(paths: list[str], parallel: int, seconds: float) -> dict[str, Any]:
    count = [0] * parallel
    deadline = time.monotonic() + seconds

    def loop(slot: int) -> None:
        index = slot * len(paths) // parallel
        while time.monotonic() < deadline:
            image = pyvips.Image.thumbnail(
                paths[index % len(paths)], WIDTH, height=10_000_000, size="down"
            )
            suffix = ".png" if paths[index % len(paths)].endswith(".png") else ".jpg"
            image.write_to_buffer(suffix, keep="none")
            count[slot] += 1
            index += 1

    started = time.monotonic()
    workers = [threading.Thread(target=loop, args=(slot,)) for slot in range(parallel)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return {
        "renders_per_s": sum(count) / elapsed,
        "peak_rss_mib": peak_rss_kib() / 1024,
    }


def _encode(paths: list[str], suffix: str, options: dict[str, Any], repeat: int) -> dict[str, Any]:
    timings, sizes = [], []
    for path in paths:
        image = pyvips.Image.thumbnail(path, WIDTH, height=10_000_000, size="down")
        if suffix == ".jpg" and image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        image = image.copy_memory()  # time the encoder alone
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            data = image.write_to_buffer(suffix, keep="none", **options)
            best = min(best, time.perf_counter() - started)
        timings.append(best * 1000)
        sizes.append(len(data))
    return {"ms_total": sum(timings), "bytes_total": sum(sizes)}


def run_config(config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.lab.tuning", "--worker", json.dumps(config)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def threads(paths: list[str], seconds: float, runs: int) -> list[str]:
    configs = [
        ("1 thread x 2 renders (service)", {"VIPS_CONCURRENCY": "1"}, 2),
        ("2 threads x 1 render", {"VIPS_CONCURRENCY": "2"}, 1),
        ("2 threads x 2 renders (libvips default threads)", {"VIPS_CONCURRENCY": "2"}, 2),
        ("1 thread x 4 renders", {"VIPS_CONCURRENCY": "1"}, 4),
        ("1 thread x 2 renders, MALLOC_ARENA_MAX=2", ARENA2, 2),
        ("1 thread x 4 renders, MALLOC_ARENA_MAX=2", ARENA2, 4),
    ]  # fmt: skip
    figures: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in configs}
    for _ in range(runs):  # alternate the configurations within each round
        for label, env, parallel in configs:
            config = {"kind": "threads", "paths": paths, "parallel": parallel, "seconds": seconds}
            figures[label].append(run_config(config, env))
    reference = statistics.median(r["renders_per_s"] for r in figures[configs[0][0]])
    lines = [
        f"| threads per render x renders at once | renders/s (median of {runs}) | range "
        "| vs service | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for label, _, _ in configs:
        rates = [r["renders_per_s"] for r in figures[label]]
        rss = statistics.median(r["peak_rss_mib"] for r in figures[label])
        median = statistics.median(rates)
        lines.append(
            f"| {label} | {median:.1f} | {min(rates):.1f}-{max(rates):.1f} "
            f"| {median / reference:.2f}x | {rss:.0f} |"
        )
    return lines


def encoders(kind: str, paths: list[str], repeat: int) -> list[str]:
    quality, effort = service_defaults()
    rows: list[tuple[str, str, dict[str, Any]]]
    if kind == "avif":
        rows = [
            (f"effort {e}{mark}", ".avif", {"Q": quality["avif"], "effort": e})
            for e in (0, 1, 2, 4, 6)
            for mark in [" (service)" if e == effort else ""]
        ]
    elif kind == "webp":
        rows = [
            (f"effort {e}{mark}", ".webp", {"Q": quality["webp"], "effort": e})
            for e in (0, 2, 4, 6)
            for mark in [" (libvips default, service)" if e == 4 else ""]
        ]
    elif kind == "jpeg":
        q = quality["jpeg"]
        optimized = {"Q": q, "optimize_coding": True}
        rows = [
            ("Q80, libvips defaults", ".jpg", {"Q": q}),
            ("Q80 + optimize_coding (service)", ".jpg", {"Q": q, "optimize_coding": True}),
            ("Q80 + optimize_coding + interlace", ".jpg", {**optimized, "interlace": True}),
            ("Q80 + optimize_coding + trellis_quant", ".jpg", {**optimized, "trellis_quant": True}),
        ]
    else:
        # kind is "png" (opaque photographs), "png-drawn" or "png-alpha":
        # the service chooses its PNG options by that (pipeline.png_save_options).
        service = png_save_options(has_alpha=kind == "png-alpha", drawn=kind == "png-drawn")
        rows = []
        photo = str(png_save_options(has_alpha=False, drawn=False)["filter"])
        for c, f in ((6, "none"), (6, "all"), (6, photo), (6, "avg"), (4, "none"), (4, photo)):
            options: dict[str, Any] = {"compression": c, "filter": f}
            marks = ["libvips default"] if (c, f) == (6, "none") else []
            marks += ["service"] if options == service else []
            # A "|" would split the Markdown cell: flags print as none\|sub.
            shown = f.replace("|", "\\|")
            label = f"compression {c}, filter {shown}" + (f" ({', '.join(marks)})" if marks else "")
            rows.append((label, ".png", options))
    results = [
        (label, run_config(_encode_config(paths, suffix, options, repeat), {}))
        for label, suffix, options in rows
    ]
    base_ms, base_bytes = results[0][1]["ms_total"], results[0][1]["bytes_total"]
    lines = [
        f"| {kind} save options | encode ms (sum over {len(paths)} images) | bytes (sum) "
        f"| ms vs first row | bytes vs first row |",
        "|---|---|---|---|---|",
    ]
    for label, figures in results:
        lines.append(
            f"| {label} | {figures['ms_total']:.0f} | {figures['bytes_total']:,} "
            f"| {figures['ms_total'] / base_ms:.2f}x | {figures['bytes_total'] / base_bytes:.2f}x |"
        )
    return lines


def png_kind(path: str) -> str:
    """The service's kind of PNG original (pipeline.png_save_options)."""
    header = pyvips.Image.new_from_file(path)
    if header.hasalpha():
        return "png-alpha"
    return "png-drawn" if is_drawn(header, os.path.getsize(path)) else "png"


def _encode_config(
    paths: list[str], suffix: str, options: dict[str, Any], repeat: int
) -> dict[str, Any]:
    return {
        "kind": "encode",
        "paths": paths,
        "suffix": suffix,
        "options": options,
        "repeat": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="threads,avif,webp,jpeg,png")
    parser.add_argument("--corpus", default=os.path.join(ROOT, corpus.DEFAULT_DIR))
    parser.add_argument(
        "--pngs", nargs="+", metavar="PNG", help="your own PNGs for --only png (default: the mix's)"
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    corpus.build(args.corpus)
    folder = corpus.originals_dir(args.corpus)
    mix = [os.path.join(folder, name) for name in corpus.mix_names()]
    jpegs = [p for p in mix if p.endswith(".jpg")]
    pngs = args.pngs or [p for p in mix if p.endswith(".png")]
    for part in args.only.split(","):
        if part == "threads":
            lines = threads(mix, args.seconds, args.runs)
        elif part in ("avif", "webp", "jpeg"):
            lines = encoders(part, jpegs, args.repeat)
        elif part == "png":
            # In the service's three kinds: it treats them apart.
            kinds: dict[str, list[str]] = {"png": [], "png-drawn": [], "png-alpha": []}
            for path in pngs:
                kinds[png_kind(path)].append(path)
            lines = []
            for kind, paths in kinds.items():
                if paths:
                    lines += [*encoders(kind, paths, args.repeat), ""]
        else:
            raise SystemExit(f"unknown part {part!r}")
        print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
