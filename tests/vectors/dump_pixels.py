"""Write the pixels the reference hash vectors are made from.

Run from the repository root: ``python -m tests.vectors.dump_pixels``, then
``node tests/vectors/make_hash_vectors.mjs`` (README.md here says how to
install the reference encoders). Each input is the very render /info hashes
(``render.info.small_render``: upright, sRGB, RGBA, at most 100 px a side)
of a test image, stored raw (4 bytes a pixel, row by row) in pixels/, and
listed with its size in inputs.json; one synthetic input covers the
all-transparent picture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from service.render import read_facts
from service.render.failures import Deadline
from service.render.info import small_render
from service.render.libvips import configure_libvips, libvips_version

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
# Photos, grey, alpha, palette, an EXIF-turned portrait, the first frame of
# an animation, a 1x1 and an extreme aspect ratio.
SOURCES = (
    "service/samples/rocket.jpg",
    "service/samples/chelsea.png",
    "service/samples/camera.png",
    "tests/corpus/conformance/exif_portrait_6.jpg",
    "tests/corpus/conformance/png_rgba_small.png",
    "tests/corpus/conformance/png_colormatch_icc.png",
    "tests/corpus/conformance/gif_animated_5f.gif",
    "tests/corpus/conformance/webp_animated_42f.webp",
    "tests/corpus/conformance/png_1x1_palette.png",
    "tests/corpus/conformance/tiff_1bit_256x4.tif",
)


def render_pixels(path: Path) -> tuple[int, int, bytes]:
    """The RGBA pixels /info hashes for the original at ``path``."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        facts = read_facts(descriptor, allow_svg=False)
        with Deadline(60.0) as deadline:
            small = small_render(facts, descriptor, deadline)
    finally:
        os.close(descriptor)
    return small.width, small.height, small.rgba


def main() -> None:
    configure_libvips()
    entries: list[dict[str, object]] = []
    for source in SOURCES:
        width, height, rgba = render_pixels(ROOT / source)
        entries.append(_write(Path(source).stem, width, height, rgba, source))
    clear = bytes([200, 30, 30, 0]) * (7 * 5)  # colour under zero alpha
    entries.append(_write("transparent_7x5", 7, 5, clear, "synthetic"))
    document = {"libvips": libvips_version(), "inputs": entries}
    (HERE / "inputs.json").write_text(json.dumps(document, indent=2) + "\n")


def _write(name: str, width: int, height: int, rgba: bytes, source: str) -> dict[str, object]:
    (HERE / "pixels" / f"{name}.rgba").write_bytes(rgba)
    return {
        "name": name,
        "source": source,
        "width": width,
        "height": height,
        "pixels": f"pixels/{name}.rgba",
    }


if __name__ == "__main__":
    main()
