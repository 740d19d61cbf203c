"""The chart: bytes against SSIMULACRA2 per format, photos and drawn images.

Each sweep family is a line over q (bytes summed over the images, the
SSIMULACRA2 mean); each encoder's defaults a marker. Drawn with matplotlib
(the test extra's, as ``image-factory loadtest --chart`` is).
"""

from __future__ import annotations

from typing import Any

from . import analysis
from .report import ENCODERS, FORMATS

MARKERS = {"ours": "*", "pillow": "s", "sharp": "^"}


def draw(results: dict[str, Any], target: str) -> None:
    import matplotlib  # noqa: PLC0415 - only where charts are drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = results["rows"]
    figure, axes = plt.subplots(2, 4, figsize=(20, 9))
    for row_index, kind in enumerate(("photo", "drawn")):
        for column, fmt in enumerate(FORMATS):
            axis = axes[row_index][column]
            settings = analysis.sweep(rows, kind, fmt)
            images = {r["image"] for r in analysis.select(rows, kind=kind, format=fmt,
                                                          encoder="sweep")}  # fmt: skip
            for family in dict.fromkeys(a.family for a in settings):
                line = [a for a in settings if a.family == family]
                axis.plot([a.bytes / 1024 for a in line], [a.ssimulacra2 for a in line],
                          marker=".", label=family)  # fmt: skip
            for encoder, family in ENCODERS:
                a = analysis.default(
                    rows, kind, fmt, encoder=encoder, family=family, images=images or None
                )
                if a is not None:
                    name = encoder if family == "default" else f"{encoder} {family}"
                    axis.plot([a.bytes / 1024], [a.ssimulacra2], MARKERS[encoder], markersize=11,
                              label=f"{name} q{a.q or '-'}", alpha=0.8)  # fmt: skip
            axis.set_xscale("log")
            axis.set_title(f"{fmt.upper()}, {kind}s ({len(images) or '-'} images)")
            axis.set_xlabel("KiB, summed over the images")
            axis.set_ylabel("SSIMULACRA2, mean")
            axis.grid(alpha=0.3)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
    figure.suptitle(f"Bytes against SSIMULACRA2 at the same size, {results['started']}")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
