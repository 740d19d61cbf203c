"""Encoder options that cost no encode time, against the service's, by SSIMULACRA2.

    .venv/bin/python -m benchmarks.lab.encoder_options [--format jpeg|webp] [--widths 400,800,1600]

For the quality harness' photos (``benchmarks.quality.images``): the
service's render at each width (an image's own width where it is
smaller), as lossless pixels, encoded by libvips with each family of
options (``FAMILIES``; the first is the one the others are measured
against) at q 40-97, each encode scored against those pixels with the
service's SSIMULACRA2 and timed (median of 3).

- JPEG: mozjpeg's quantisation tables (``quant_table``; 0 is the JPEG
  standard's Annex K table), with Huffman optimisation as the service
  encodes. A JPEG narrower than the width, served at its own size, is
  left out at that width (``--requantise`` measures those).
- WebP: libwebp's presets, ``smart_deblock`` and ``passes``, at the
  service's effort 4.
- ``--requantise``: JPEG originals served at their own size. Each photo's
  render at 800 px made into an Annex K JPEG at q0 (75, 85, 92), decoded,
  and encoded again at q0 - 15 to q0 + 5 with table 0 and table 5, scored
  against the decoded original: where the service keeps Annex K
  (``service.render.encoding.near_own_quality``).

Prints a Markdown table per width: for each family and q, the mean score,
the summed bytes and the encode time against the first family at the same
q, and the largest drop of one image's score; then, per family, the bytes
it needs at each image's score at the first family's q80 (interpolated
along its curve in log bytes), against the first family's.
docs/quality.md ("JPEG quantisation table") quotes it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import pyvips

from service.render.score_pixels import pixels_of
from service.render.ssimulacra2 import Reference

from .. import corpus
from ..quality import analysis, harness, images

QUALITIES = (40, 50, 60, 70, 75, 80, 85, 89, 90, 95, 97)
AT_SCORE_OF = 80  # the first family's q whose score the bytes are compared at
FAMILIES: dict[str, dict[str, dict[str, object]]] = {
    "jpeg": {
        f"table {table}": {"optimize_coding": True, "quant_table": table}
        for table in (0, 2, 3, 4, 5)
    },
    "webp": {
        "effort 4": {"effort": 4},
        **{f"preset {p}": {"effort": 4, "preset": p} for p in ("photo", "picture", "drawing")},
        "smart_deblock": {"effort": 4, "smart_deblock": True},
        "passes 3": {"effort": 4, "passes": 3},
    },
}

Found = dict[str, dict[str, dict[int, "Encode"]]]  # image -> family -> q -> its encode


@dataclass(frozen=True, slots=True)
class Encode:
    score: float
    bytes: int
    ms: float


def _encode(
    pixels: pyvips.Image, reference: Reference, fmt: str, options: dict[str, object], q: int
) -> Encode:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        data = pixels.write_to_buffer(f".{fmt}", Q=q, **options)
        times.append(1000 * (time.perf_counter() - started))
    decoded = pyvips.Image.new_from_buffer(data, "")
    return Encode(reference.score(pixels_of(decoded)), len(data), statistics.median(times))


def measure(fmt: str, width: int) -> Found:
    render = harness.renderer()  # the service's default quality settings
    found: Found = {}
    for original in images.photos(corpus.DEFAULT_DIR):
        header = pyvips.Image.new_from_file(original.path)
        size = min(width, header.width)
        own_size = size == header.width and header.get("vips-loader") == "jpegload"
        if fmt == "jpeg" and own_size:
            continue  # measured by --requantise: Annex K may stay (render/encoding.py)
        png = pyvips.Image.new_from_buffer(render(original.path, size, "png"), "")
        pixels = images.flatten(png).copy_memory()
        reference = Reference(pixels_of(pixels))
        found[original.name] = {
            family: {q: _encode(pixels, reference, fmt, options, q) for q in QUALITIES}
            for family, options in FAMILIES[fmt].items()
        }
    return found


def report(fmt: str, width: int, found: Found) -> None:
    names = list(found)
    first, *others = FAMILIES[fmt]
    print(f"\n{fmt}, {width} px wide ({len(names)} photos): against {first} at the same q\n")
    print(
        f"| family | q | mean SSIMULACRA2, {first} → family | worst image | bytes | encode time |"
    )
    print("|---|---|---|---|---|---|")
    for family in others:
        for q in QUALITIES:
            base = [found[n][first][q] for n in names]
            this = [found[n][family][q] for n in names]
            print(
                f"| {family} | {q} | {statistics.fmean(e.score for e in base):.2f} → "
                f"{statistics.fmean(e.score for e in this):.2f} "
                f"| {min(t.score - b.score for t, b in zip(this, base, strict=True)):+.2f} "
                f"| {sum(e.bytes for e in this) / sum(e.bytes for e in base):.3f}x "
                f"| {sum(e.ms for e in this) / sum(e.ms for e in base):.2f}x |"
            )
    print(f"\nbytes at each image's {first} q{AT_SCORE_OF} score, against {first}'s\n")
    print("| family | median (range) | sum | images |")
    print("|---|---|---|---|")
    for family in others:
        ratios, ours, theirs = [], 0.0, 0
        for name in names:
            target = found[name][first][AT_SCORE_OF]
            curve = [(e.score, e.bytes) for e in found[name][family].values()]
            needed = analysis.bytes_at(curve, target.score)
            if needed is not None:
                ratios.append(needed / target.bytes)
                ours, theirs = ours + needed, theirs + target.bytes
        if ratios:
            print(
                f"| {family} | {statistics.median(ratios):.3f}x ({min(ratios):.2f}-"
                f"{max(ratios):.2f}) | {ours / theirs:.3f}x | {len(ratios)} |"
            )


REQUANTISED_FROM = (75, 85, 92)
REQUANTISED_AT = (-15, -10, -5, -2, -1, 0, 1, 2, 5)


def requantise() -> None:
    """Annex K originals encoded again at their own size, table 0 against 5."""
    render = harness.renderer()
    found: dict[tuple[int, int], list[tuple[Encode, Encode]]] = {}
    for original in images.photos(corpus.DEFAULT_DIR):
        png = pyvips.Image.new_from_buffer(render(original.path, 800, "png"), "")
        pixels = images.flatten(png).copy_memory()
        for own in REQUANTISED_FROM:
            made = pixels.jpegsave_buffer(Q=own, optimize_coding=True, quant_table=0)
            decoded = pyvips.Image.new_from_buffer(made, "").copy_memory()
            reference = Reference(pixels_of(decoded))
            for step in REQUANTISED_AT:
                annex_k, table_5 = (
                    _encode(decoded, reference, "jpeg", FAMILIES["jpeg"][f"table {t}"], own + step)
                    for t in (0, 5)
                )
                found.setdefault((own, step), []).append((annex_k, table_5))
    print("\nAnnex K originals at their own size (800 px), encoded again: table 0 → 5\n")
    print("| original's q | output q | mean SSIMULACRA2, 0 → 5 | worst image | bytes, 5 / 0 |")
    print("|---|---|---|---|---|")
    for (own, step), pairs in sorted(found.items()):
        print(
            f"| {own} | {own + step} ({step:+d}) "
            f"| {statistics.fmean(k.score for k, _ in pairs):.2f} → "
            f"{statistics.fmean(t.score for _, t in pairs):.2f} "
            f"| {min(t.score - k.score for k, t in pairs):+.2f} "
            f"| {sum(t.bytes for _, t in pairs) / sum(k.bytes for k, _ in pairs):.3f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=sorted(FAMILIES), default="jpeg")
    parser.add_argument("--widths", default="400,800,1600")
    parser.add_argument("--requantise", action="store_true", help="JPEGs at their own size")
    args = parser.parse_args()
    if args.requantise:
        requantise()
        return
    for width in (int(w) for w in args.widths.split(",")):
        report(args.format, width, measure(args.format, width))


if __name__ == "__main__":
    main()
