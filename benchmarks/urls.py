"""URL lists: which variants each load run asks for, in each competitor's syntax.

An *uncached* run must never ask for a variant twice, or the second request
would be a cache hit. A ``VariantPool`` hands out variants in order (the
images round-robin, then the next width, then a new height salt) and never
the same one twice, so consecutive runs against one server stay uncached.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .competitors import service_defaults

COMPETITORS = ("service", "baseline", "thumbor", "ipx")


def spread(values: Sequence[int]) -> list[int]:
    """``values`` reordered so that any run of consecutive items samples
    the whole range about evenly: a golden-ratio stride through them.

    A load run uses a stretch of the pool; in ascending order that stretch
    would be a few neighbouring widths, and runs starting at different
    points would ask for renders of different cost (600 px vs 1000 px).
    """
    count = len(values)
    stride = max(1, round(count * (math.sqrt(5) - 1) / 2))
    while math.gcd(stride, count) != 1:  # coprime, so every value comes once
        stride += 1
    return [values[(index * stride) % count] for index in range(count)]


# Around the 800 px the targets are stated for, every stretch of the pool
# averaging ~850 px.
DEFAULT_WIDTHS = spread(range(600, 1100))
# A height salt that never constrains a fit (aspect ratios here are < 3.6:1)
# yet makes a new URL once the widths are used up; under the service's
# default --max-output-size of 4096. A new URL, not a new output: the
# service keys its cache by the output, so there a salted variant of a
# width it has rendered is a hit (VariantPool.give_back keeps the suite
# from reaching the salts).
_SALT_BASE = 4096


@dataclass(frozen=True, slots=True)
class Variant:
    name: str  # path under the originals directory
    width: int
    height: int | None = None
    format: str | None = None  # None: the original's


class VariantPool:
    """Hands out distinct variants of ``names``, in a fixed order."""

    def __init__(self, names: Sequence[str], widths: Sequence[int] = DEFAULT_WIDTHS) -> None:
        if not names or not widths:
            raise ValueError("a pool needs images and widths")
        self.names = list(names)
        self.widths = list(widths)
        self.used = 0

    def variant(self, index: int, fmt: str | None = None) -> Variant:
        per_salt = len(self.names) * len(self.widths)
        salt, within = divmod(index, per_salt)
        step, image = divmod(within, len(self.names))
        height = None if salt == 0 else _SALT_BASE - salt
        # Portrait originals here are at most 1.5:1; 3:1 leaves a margin.
        if height is not None and height < max(self.widths) * 3:
            raise ValueError("variant pool exhausted")
        return Variant(self.names[image], self.widths[step], height, fmt)

    def take(self, count: int, fmt: str | None = None) -> list[Variant]:
        start = self.used
        self.used += count
        return [self.variant(index, fmt) for index in range(start, start + count)]

    def give_back(self, start: int, asked: int) -> None:
        """After a run of the variants taken from ``start``, of which the
        first ``asked`` were requested: the rest are handed out again. A
        run takes far more than it asks for; without this the pool ran out
        of widths within the suite, and its salted variants (whose output
        is a width already rendered) were cache hits on the service."""
        if not start <= start + asked <= self.used:
            raise ValueError("give_back after another take, or beyond it")
        self.used = start + asked


def spread_variants(names: Sequence[str], count: int) -> list[Variant]:
    """``count`` variants, the i-th the i-th image (round-robin) at the i-th
    of ``DEFAULT_WIDTHS``: a few renders that still sample the pool's whole
    range of widths (24 of the 12-image mix average 841 px, 600-1089)."""
    return [
        Variant(names[index % len(names)], DEFAULT_WIDTHS[index % len(DEFAULT_WIDTHS)])
        for index in range(count)
    ]


def fixed_variants(names: Iterable[str], width: int, fmt: str | None = None) -> list[Variant]:
    """One variant per image at one width: the cache-hit set."""
    return [Variant(name, width, None, fmt) for name in names]


# The service and the baseline take the same three parameters under their
# own names: width, height, output format.
_QUERY_NAMES = {
    "service": ("w", "h", "format"),
    "before": ("w", "h", "format"),  # the service of another checkout (--compare-with)
    "remote": ("w", "h", "format"),  # the service reading from an HTTP origin (scenario 8)
    "baseline": ("scalex", "scaley", "encoding"),
}


def url_path(competitor: str, variant: Variant) -> str:
    """The request path (and query) for ``variant`` on ``competitor``."""
    name = quote(variant.name)
    if competitor in _QUERY_NAMES:
        width, height, fmt = _QUERY_NAMES[competitor]
        query = f"{width}={variant.width}"
        if variant.height is not None:
            query += f"&{height}={variant.height}"
        if variant.format:
            query += f"&{fmt}={variant.format}"
        return f"/picture/{name}?{query}"
    if competitor == "thumbor":
        # fit-in: inside the box, keeping the aspect ratio, never upscaled
        # (thumbor upscales fit-in only with filters:upscale()).
        box = f"{variant.width}x{variant.height or 0}"
        filters = f"filters:format({variant.format})/" if variant.format else ""
        return f"/unsafe/fit-in/{box}/{filters}{name}"
    if competitor == "ipx":
        return ipx_path(variant, service_defaults()[0])
    raise ValueError(f"unknown competitor {competitor!r}")


# ipx keeps an original's format unless told; the suite always tells it
# (with no f_, ipx picks the format from the file's bytes).
_FORMAT_OF_EXTENSION = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}


def ipx_path(variant: Variant, quality: Mapping[str, int]) -> str:
    """ipx's modifiers for ``variant``: ``/w_800,f_jpeg,q_80/photo.jpg``.

    ``w_`` fits the width and never enlarges (sharp's withoutEnlargement),
    as ``w=`` does on the service. The height salt is left out: it never
    constrains the fit (VariantPool), and ipx keeps no result cache, so
    every request renders whether or not its URL was asked before (ipx's
    ``s_WxH`` would shrink the box to the original's height, keeping the
    box's shape, not the image's). ``q_`` only for lossy formats, at
    ``quality`` (the service's defaults): on PNG, sharp takes a quality as
    a request for a quantised palette."""
    extension = os.path.splitext(variant.name)[1].lower()
    fmt = variant.format or _FORMAT_OF_EXTENSION.get(extension)
    if fmt is None:
        raise ValueError(f"no output format for {variant.name!r}")
    modifiers = [f"w_{variant.width}", f"f_{fmt}"]
    if fmt in quality:
        modifiers.append(f"q_{quality[fmt]}")
    return f"/{','.join(modifiers)}/{quote(variant.name)}"


def write_paths(path: str, paths: Iterable[str]) -> int:
    """One request path per line, as the wrk script and loadtest read them."""
    count = 0
    with open(path, "w") as out:
        for line in paths:
            if "\n" in line or not line.startswith("/"):
                raise ValueError(f"not a request path: {line!r}")
            out.write(line + "\n")
            count += 1
    return count


def paths_file(directory: str, label: str) -> str:
    return os.path.join(directory, f"{label}.paths")
