"""How much each competitor's JPEG shrink-on-load costs in quality.

    .venv/bin/python -m benchmarks.lab.shrink_quality [--widths 800,1050]

For each JPEG of the benchmark mix, PSNR against an exact reference (the
whole image decoded, then reduced by libvips' Lanczos 3) of:
- the service's render path (libvips ``thumbnail``: shrinks on load only by
  what leaves at least 2x for the Lanczos filter), rendered to PNG;
- Pillow's ``thumbnail`` (the baseline): ``draft()`` to twice the output
  size, then LANCZOS with ``reducing_gap=2``;
- thumbor's PIL engine: ``draft(None, size)`` to the output size itself,
  then LANCZOS (its real output is pixel for pixel this).
All at the service's output size and scale (one scale for both axes), so
only the resampling differs. Prints a Markdown table per width; the table
in ``docs/quality.md`` ("JPEG shrink-on-load") comes from it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import pyvips
from PIL import Image

from .. import corpus
from ..competitors import ROOT
from ..libcost import Renderer, service_renderer


def psnr(first: pyvips.Image, second: pyvips.Image) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB (inf if equal)."""
    difference = first.cast("double") - second.cast("double")
    mean_square = float((difference * difference).avg())
    return math.inf if mean_square == 0 else 10 * math.log10(255 * 255 / mean_square)


def from_pillow(image: Image.Image) -> pyvips.Image:
    rgb = image.convert("RGB")
    return pyvips.Image.new_from_memory(rgb.tobytes(), rgb.width, rgb.height, 3, "uchar")


def service_render(render: Renderer, path: str, width: int) -> pyvips.Image:
    """The service's render path (``libcost``'s), to PNG: lossless, so only
    the resampling is compared."""
    return pyvips.Image.new_from_buffer(render(path, width, "png"), "")


def pillow_render(
    path: str, size: tuple[int, int], scale: float, *, draft_factor: int, reducing_gap: float | None
) -> pyvips.Image:
    """Pillow's ``draft()`` to ``draft_factor`` times ``size``, then LANCZOS
    (with ``reducing_gap``, as ``thumbnail`` has it), at the service's
    ``scale``: the box is in the drafted image's pixels."""
    with Image.open(path) as image:
        full_width = image.width
        image.draft(None, (size[0] * draft_factor, size[1] * draft_factor))
        drafted = image.width / full_width
        box = (
            0.0,
            0.0,
            min(image.width, size[0] / scale * drafted),
            min(image.height, size[1] / scale * drafted),
        )
        resized = image.convert("RGB").resize(
            size, Image.Resampling.LANCZOS, box=box, reducing_gap=reducing_gap
        )
        return from_pillow(resized)


def measure(render: Renderer, path: str, width: int) -> tuple[float, float, float, float]:
    """(reduction, service dB, Pillow thumbnail dB, thumbor dB) for ``path``,
    ``render`` being the service's render path (``libcost.service_renderer``)."""
    service = service_render(render, path, width)
    size = (service.width, service.height)
    whole = pyvips.Image.new_from_file(path)
    scale = service.width / whole.width  # thumbnail's one scale for both axes
    reference = whole.resize(scale, kernel="lanczos3")
    reference = reference.crop(0, 0, min(size[0], reference.width), min(size[1], reference.height))
    service = service.crop(0, 0, reference.width, reference.height)
    size = (reference.width, reference.height)
    # Pillow's thumbnail drafts to twice the size; thumbor's engine to the size.
    baseline = pillow_render(path, size, scale, draft_factor=2, reducing_gap=2.0)
    thumbor = pillow_render(path, size, scale, draft_factor=1, reducing_gap=None)
    return 1 / scale, psnr(service, reference), psnr(baseline, reference), psnr(thumbor, reference)


def jpeg_lab_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of the labs that measure the mix's JPEGs at some widths:
    ``--widths`` (parsed to a list of ints) and ``--corpus``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--widths", type=_widths, default="800,1050")
    parser.add_argument("--corpus", default=os.path.join(ROOT, corpus.DEFAULT_DIR))
    return parser


def _widths(text: str) -> list[int]:
    return [int(width) for width in text.split(",")]


def main() -> None:
    args = jpeg_lab_parser(__doc__).parse_args()
    render = service_renderer()
    jpegs = corpus.mix_jpegs(args.corpus)
    for width in args.widths:
        print(f"\n{width} px wide, PSNR against the exact reduction:\n")
        print("| image | reduction | service | Pillow thumbnail | thumbor's steps |")
        print("|---|---|---|---|---|")
        measured = [(name, measure(render, path, width)) for name, path in jpegs]
        measured = [(name, row) for name, row in measured if row[0] > 1]  # never upscaled
        rows = [row for _, row in measured]
        for name, (reduction, *decibels) in measured:
            cells = " | ".join(f"{value:.1f} dB" for value in decibels)
            print(f"| {name} | {reduction:.1f}x | {cells} |")
        gaps = [baseline - thumbor for _, _, baseline, thumbor in rows]
        print(
            f"\nthumbor's steps below Pillow's thumbnail: {min(gaps):.1f}-{max(gaps):.1f} dB "
            f"(median {statistics.median(gaps):.1f})"
        )


if __name__ == "__main__":
    main()
