"""What a deeper JPEG shrink-on-load buys and costs, per JPEG of the mix.

    .venv/bin/python -m benchmarks.lab.fast_shrink [--widths 800,1050] [--rounds 7]
        [--pair fast|halving]

For each JPEG of the benchmark mix that the two depths render differently
(where libjpeg's DCT scaling goes deeper on one side), the service's render
path at each depth in one process (geometry.ShrinkDepth): ``--pair fast``
(the default) the service's depth ("exact") against
``--fast-shrink-on-load`` ("fast"); ``--pair halving`` libvips' thumbnail's
depth, the service's before pipeline version 15 ("exact"), against the
service's, which halves from a 3x reduction ("fast"):
- PSNR against an exact reference (the whole image decoded, then reduced
  by libvips' Lanczos 3 to the exact render's size), rendered to PNG;
- SSIMULACRA2 of each one's JPEG (the service's q80) against that reference;
- bytes and CPU time (medians of ``--rounds``, the two alternated) of the
  JPEG renders, fast / exact.
``--widths`` sets the output widths, ``--reductions`` (e.g. 3.05,3.5,3.95)
instead asks each JPEG at the widths that reduce it so much.
Prints a Markdown table per width; ``docs/quality.md`` ("JPEG
shrink-on-load") quotes it.
"""

from __future__ import annotations

import statistics
import time

import pyvips

from service.render.score_pixels import pixels_of
from service.render.ssimulacra2 import ssimulacra2

from .. import corpus
from ..libcost import Renderer, service_renderer
from .shrink_quality import jpeg_lab_parser, psnr


def _cpu_ms(render: Renderer, path: str, width: int) -> float:
    started = time.process_time()
    render(path, width, "jpeg")
    return 1000 * (time.process_time() - started)


def measure(
    renders: tuple[Renderer, Renderer], path: str, width: int, rounds: int
) -> dict[str, float] | None:
    """The row for ``path`` at ``width``; None where both render alike."""
    exact, fast = renders
    exact_png = pyvips.Image.new_from_buffer(exact(path, width, "png"), "")
    fast_png = pyvips.Image.new_from_buffer(fast(path, width, "png"), "")
    if exact_png.write_to_memory() == fast_png.write_to_memory():
        return None
    whole = pyvips.Image.new_from_file(path).autorot()

    def reference(image: pyvips.Image) -> pyvips.Image:
        """The exact reduction to ``image``'s size (the two may differ by a
        row: libvips' thumbnail rounds the shrunk image's rows)."""
        scaled = whole.resize(image.width / whole.width, vscale=image.height / whole.height)
        return scaled.crop(0, 0, image.width, image.height)

    exact_jpeg, fast_jpeg = exact(path, width, "jpeg"), fast(path, width, "jpeg")
    scores = []
    for jpeg in (exact_jpeg, fast_jpeg):
        decoded = pyvips.Image.new_from_buffer(jpeg, "")
        scores.append(ssimulacra2(pixels_of(reference(decoded)), pixels_of(decoded)))
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for side in order:
            times[side].append(_cpu_ms(renders[side], path, width))
    exact_ms, fast_ms = (statistics.median(side) for side in times)
    return {
        "reduction": whole.width / exact_png.width,
        "exact_db": psnr(exact_png, reference(exact_png)),
        "fast_db": psnr(fast_png, reference(fast_png)),
        "exact_score": scores[0],
        "fast_score": scores[1],
        "bytes": len(fast_jpeg) / len(exact_jpeg),
        "exact_ms": exact_ms,
        "time": fast_ms / exact_ms,
    }


# The depths each side renders at (libcost.service_renderer's names).
_PAIRS = {"fast": ("service", "fast"), "halving": ("libvips", "service")}


def _reductions(text: str) -> list[float]:
    return [float(reduction) for reduction in text.split(",")]


def main() -> None:
    parser = jpeg_lab_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pair", choices=_PAIRS, default="fast")
    parser.add_argument("--reductions", type=_reductions, help="instead of --widths")
    args = parser.parse_args()
    first, second = _PAIRS[args.pair]
    renders = (service_renderer(jpeg_shrink=first), service_renderer(jpeg_shrink=second))
    jpegs = corpus.mix_jpegs(args.corpus)
    sizes = {name: pyvips.Image.new_from_file(path).autorot().width for name, path in jpegs}
    for asking in args.reductions or args.widths:  # a reduction or a width
        title = f"{asking}x reductions" if args.reductions else f"{asking} px wide"
        print(f"\n{title}: exact / fast ({args.pair})\n")
        print("| image | width | reduction | PSNR | SSIMULACRA2, q80 | bytes | CPU time |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        for name, path in jpegs:
            asked = round(sizes[name] / asking) if args.reductions else int(asking)
            row = measure(renders, path, asked, args.rounds)
            if row is None:
                continue
            rows.append(row)
            print(
                f"| {name} | {asked} | {row['reduction']:.2f}x | {row['exact_db']:.1f} / "
                f"{row['fast_db']:.1f} dB | {row['exact_score']:.1f} / {row['fast_score']:.1f} | "
                f"{row['bytes']:.3f}x | {row['time']:.2f}x ({row['exact_ms']:.0f} ms exact) |"
            )
        if rows:
            drops = [row["exact_score"] - row["fast_score"] for row in rows]
            print(
                f"\nmedian CPU time {statistics.median(row['time'] for row in rows):.2f}x; "
                f"SSIMULACRA2 lower by {statistics.median(drops):.1f} (median), "
                f"{max(drops):.1f} at most"
            )


if __name__ == "__main__":
    main()
