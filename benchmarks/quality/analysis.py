"""The answers issue 24's item 2 and 3 ask of a run's rows.

- ``best``: per format, the sweep setting with the fewest bytes (summed
  over the images) whose mean SSIMULACRA2 is at least today's default's,
  within 1.3x its encode time (summed); for drawn PNGs, the palette setting
  with the fewest bytes at a mean SSIMULACRA2 of at least 90.
- ``against``: our curve's bytes at sharp's score, image by image (bytes
  interpolated in log scale between the two sweep points around it), over
  sharp's bytes.
- ``probe``: how well the score at a quarter of the area (half the width)
  predicts the full-size score, over every q of the default curves.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]
TIME_LIMIT = 1.3  # x today's encode time
DRAWN_PNG_FLOOR = 90.0  # SSIMULACRA2: "very high quality" on libjxl's scale


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One setting over a set of images: sums and means."""

    family: str
    q: int | None
    images: int
    bytes: int
    encode_ms: float
    ssimulacra2: float  # mean
    worst: float  # the lowest over the images
    ssim: float  # mean


def select(rows: Iterable[Row], **where: object) -> list[Row]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def aggregate(rows: list[Row], family: str, q: int | None) -> Aggregate:
    return Aggregate(
        family,
        q,
        len(rows),
        sum(r["bytes"] for r in rows),
        sum(r["encode_ms"] for r in rows),
        statistics.fmean(r["ssimulacra2"] for r in rows),
        min(r["ssimulacra2"] for r in rows),
        statistics.fmean(r["ssim"] for r in rows),
    )


def sweep(rows: list[Row], kind: str, fmt: str) -> list[Aggregate]:
    """Every sweep setting of ``fmt`` over the images of ``kind`` that have it."""
    found = select(rows, kind=kind, format=fmt, encoder="sweep", probe=False)
    keys = sorted({(r["family"], r["q"]) for r in found}, key=lambda k: (k[0], k[1] or 0))
    return [aggregate(select(found, family=f, q=q), f, q) for f, q in keys]


def default(
    rows: list[Row],
    kind: str,
    fmt: str,
    *,
    encoder: str = "ours",
    family: str = "default",
    images: set[str] | None = None,
) -> Aggregate | None:
    found = select(rows, kind=kind, format=fmt, encoder=encoder, family=family, probe=False)
    found = [r for r in found if images is None or r["image"] in images]
    return aggregate(found, family, found[0]["q"]) if found else None


@dataclass(frozen=True, slots=True)
class Best:
    """The answer for one format: today's default and the best eligible setting."""

    format: str
    today: Aggregate
    best: Aggregate | None
    rule: str


def best(rows: list[Row], kind: str, fmt: str) -> Best | None:
    candidates = sweep(rows, kind, fmt)
    if fmt == "png":
        candidates = [c for c in candidates if c.family.startswith("palette")]
        if not candidates:
            return None
        images = {r["image"] for r in select(rows, kind=kind, format="png", encoder="sweep")}
        today = default(rows, kind, fmt, images=images)
        floor, rule = DRAWN_PNG_FLOOR, f"mean SSIMULACRA2 >= {DRAWN_PNG_FLOOR:.0f}"
    else:
        today = default(rows, kind, fmt)
        floor, rule = (today.ssimulacra2 if today else 0.0), "mean SSIMULACRA2 >= today's"
    if today is None:
        return None
    eligible = [
        c
        for c in candidates
        if c.ssimulacra2 >= floor and c.encode_ms <= TIME_LIMIT * today.encode_ms
    ]
    chosen = min(eligible, key=lambda c: c.bytes) if eligible else None
    return Best(fmt, today, chosen, f"{rule}, encode time <= {TIME_LIMIT}x today's")


def bytes_at(points: list[tuple[float, int]], score: float) -> float | None:
    """Bytes at ``score`` on a curve of (score, bytes), log-interpolated; None outside it."""
    ordered = sorted(points)
    for (s0, b0), (s1, b1) in itertools.pairwise(ordered):
        if s0 <= score <= s1 and s1 > s0:
            t = (score - s0) / (s1 - s0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


@dataclass(frozen=True, slots=True)
class Against:
    """Our curve against one of sharp's outputs, at equal SSIMULACRA2."""

    format: str
    family: str
    sharp_family: str
    ratios: dict[str, float]  # image: our bytes at sharp's score / sharp's bytes
    total: float  # sum of ours / sum of sharp's, over the images with a ratio

    @property
    def median(self) -> float:
        return statistics.median(self.ratios.values()) if self.ratios else math.nan


def against(rows: list[Row], kind: str, fmt: str, family: str, sharp_family: str) -> Against:
    ratios, ours_total, sharp_total = {}, 0.0, 0
    for theirs in select(rows, kind=kind, format=fmt, encoder="sharp", family=sharp_family):
        curve = select(rows, image=theirs["image"], format=fmt, encoder="sweep", family=family,
                       probe=False)  # fmt: skip
        ours = bytes_at([(r["ssimulacra2"], r["bytes"]) for r in curve], theirs["ssimulacra2"])
        if ours is not None:
            ratios[theirs["image"]] = ours / theirs["bytes"]
            ours_total += ours
            sharp_total += theirs["bytes"]
    return Against(fmt, family, sharp_family, ratios,
                   ours_total / sharp_total if sharp_total else math.nan)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Probe:
    """The quarter-area probe's score against the full-size score, one format."""

    format: str
    pairs: int
    correlation: float  # Pearson
    mean_error: float  # probe - full, mean
    mean_abs_error: float
    max_abs_error: float
    per_image: dict[str, tuple[float, float]]  # image: (mean error, max |error|)
    q_agreement: tuple[
        int, int, int
    ]  # images where the probe picks the same q, one step off, total


def probe(rows: list[Row], fmt: str) -> Probe | None:
    curve = select(rows, format=fmt, encoder="sweep", family="default")
    full = {(r["image"], r["q"]): r["ssimulacra2"] for r in curve if not r["probe"]}
    small = {(r["image"], r["q"]): r["ssimulacra2"] for r in curve if r["probe"]}
    keys = sorted(k for k in small if k in full)
    if len(keys) < 3:
        return None
    xs, ys = [small[k] for k in keys], [full[k] for k in keys]
    errors = [x - y for x, y in zip(xs, ys, strict=True)]
    per_image: dict[str, tuple[float, float]] = {}
    same = near = total = 0
    for image in sorted({k[0] for k in keys}):
        mine = [e for k, e in zip(keys, errors, strict=True) if k[0] == image]
        per_image[image] = (statistics.fmean(mine), max(abs(e) for e in mine))
        target = default(rows, "photo", fmt, images={image})
        if target is None:
            continue
        qs = sorted(q for i, q in keys if i == image)
        pick_full = next((q for q in qs if full[(image, q)] >= target.ssimulacra2), None)
        pick_small = next((q for q in qs if small[(image, q)] >= target.ssimulacra2), None)
        total += 1
        same += pick_full == pick_small
        if pick_full is not None and pick_small is not None:
            near += abs(qs.index(pick_full) - qs.index(pick_small)) == 1
    return Probe(
        fmt,
        len(keys),
        statistics.correlation(xs, ys),
        statistics.fmean(errors),
        statistics.fmean(abs(e) for e in errors),
        max(abs(e) for e in errors),
        per_image,
        (same, near, total),
    )
