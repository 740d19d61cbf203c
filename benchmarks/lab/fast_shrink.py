"""What ``--fast-shrink-on-load`` buys and costs, per JPEG of the mix.

    .venv/bin/python -m benchmarks.lab.fast_shrink [--widths 800,1050] [--rounds 7]

For each JPEG of the benchmark mix that the option renders differently
(where libjpeg's DCT scaling can go deeper than libvips' thumbnail takes
it), the service's render path with the option off ("exact") and on
("fast"), in one process:
- PSNR against an exact reference (the whole image decoded, then reduced
  by libvips' Lanczos 3 to the exact render's size), rendered to PNG;
- SSIMULACRA2 of each one's JPEG (the service's q80) against that reference;
- bytes and CPU time (medians of ``--rounds``, the two alternated) of the
  JPEG renders, fast / exact.
Prints a Markdown table per width; ``docs/quality.md`` ("JPEG
shrink-on-load") quotes it.
"""

from __future__ import annotations

import statistics
import time

import pyvips

from service.render.auto_quality import pixels_of
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


def main() -> None:
    parser = jpeg_lab_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    renders = (service_renderer(), service_renderer(fast_shrink_on_load=True))
    jpegs = corpus.mix_jpegs(args.corpus)
    for width in args.widths:
        print(f"\n{width} px wide: exact / fast\n")
        print("| image | reduction | PSNR | SSIMULACRA2, q80 | bytes | CPU time |")
        print("|---|---|---|---|---|---|")
        rows = []
        for name, path in jpegs:
            row = measure(renders, path, width, args.rounds)
            if row is None:
                continue
            rows.append(row)
            print(
                f"| {name} | {row['reduction']:.1f}x | {row['exact_db']:.1f} / "
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
