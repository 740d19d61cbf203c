"""A quality run's Markdown: the outputs of every encoder's defaults per
image, the sweeps summed over the images, and the answers (``analysis``)."""

from __future__ import annotations

from typing import Any

from . import analysis
from .analysis import Aggregate, Row

FORMATS = ("jpeg", "webp", "avif", "png")
ENCODERS = (
    ("ours", "default"),
    ("pillow", "default"),
    ("sharp", "default"),
    ("sharp", "ipx"),
    ("sharp", "mozjpeg"),
)
TARGETS = {"jpeg": 0.85, "webp": 0.85}


def _score(value: float) -> str:
    return f"{value:.1f}"


def defaults_table(rows: list[Row], kind: str) -> list[str]:
    """Per image and format: bytes, encode ms, SSIMULACRA2, SSIM of each encoder's defaults."""
    lines = [
        f"| {kind} | format | encoder | q | bytes | encode ms | SSIMULACRA2 | SSIM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for image in dict.fromkeys(r["image"] for r in rows if r["kind"] == kind):
        for fmt in FORMATS:
            for encoder, family in ENCODERS:
                for r in analysis.select(rows, image=image, format=fmt, encoder=encoder,
                                         family=family, probe=False):  # fmt: skip
                    name = encoder if family == "default" else f"{encoder} {family}"
                    lines.append(
                        f"| {image} | {fmt} | {name} | {r['q'] or '-'} | {r['bytes']:,} "
                        f"| {r['encode_ms']:.1f} | {_score(r['ssimulacra2'])} | {r['ssim']:.4f} |"
                    )
    return lines


def _aggregate_line(label: str, a: Aggregate, today: Aggregate) -> str:
    return (
        f"| {label} | {a.bytes:,} | {a.bytes / today.bytes:.2f}x | {a.encode_ms:.0f} "
        f"| {a.encode_ms / today.encode_ms:.2f}x | {_score(a.ssimulacra2)} | {_score(a.worst)} "
        f"| {a.ssim:.4f} |"
    )


def sweep_table(rows: list[Row], kind: str, fmt: str) -> list[str]:
    """Every setting of ``fmt`` summed over the images of ``kind``, against today's default."""
    settings = analysis.sweep(rows, kind, fmt)
    if not settings:
        return []
    images = {r["image"] for r in analysis.select(rows, kind=kind, format=fmt, encoder="sweep")}
    today = analysis.default(rows, kind, fmt, images=images)
    if today is None:
        return []
    lines = [
        f"{fmt.upper()}, {kind}s ({today.images} images): sums over the images, "
        "SSIMULACRA2 mean and lowest, SSIM mean.",
        "",
        f"| {fmt} setting | bytes | vs today | encode ms | vs today "
        "| SSIMULACRA2 | lowest | SSIM |",
        "|---|---|---|---|---|---|---|---|",
        _aggregate_line(f"**today's default** (q{today.q or '-'})", today, today),
    ]
    for encoder, family in ENCODERS[1:]:
        other = analysis.default(rows, kind, fmt, encoder=encoder, family=family, images=images)
        if other is not None:
            name = encoder if family == "default" else f"{encoder} {family}"
            lines.append(_aggregate_line(f"{name} (q{other.q or '-'})", other, today))
    for a in settings:
        lines.append(_aggregate_line(f"{a.family} q{a.q}", a, today))
    return [*lines, ""]


def answers(rows: list[Row]) -> list[str]:
    lines = [
        "| kind, format | today | best setting (rule) | bytes vs today | encode time vs today "
        "| SSIMULACRA2 today → best |",
        "|---|---|---|---|---|---|",
    ]
    for kind, fmt in [("photo", f) for f in FORMATS[:3]] + [("drawn", f) for f in FORMATS]:
        found = analysis.best(rows, kind, fmt)
        if found is None:
            continue
        today, chosen = found.today, found.best
        if chosen is None:
            lines.append(f"| {kind}s, {fmt} | q{today.q or '-'} | none ({found.rule}) | | | |")
            continue
        lines.append(
            f"| {kind}s, {fmt} | q{today.q or '-'} | {chosen.family} q{chosen.q} ({found.rule}) "
            f"| {chosen.bytes / today.bytes:.2f}x | {chosen.encode_ms / today.encode_ms:.2f}x "
            f"| {_score(today.ssimulacra2)} → {_score(chosen.ssimulacra2)} |"
        )
    return lines


def sharp_table(rows: list[Row]) -> list[str]:
    lines = [
        "| photos, format | our curve | against sharp's | our bytes ÷ sharp's at its score: "
        "median (range) | total | images | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt in FORMATS[:3]:
        families = sorted({r["family"] for r in analysis.select(rows, format=fmt, encoder="sweep")})
        sharps = ["default", "ipx", "mozjpeg"] if fmt == "jpeg" else ["default"]
        for family in families:
            for theirs in sharps:
                a = analysis.against(rows, "photo", fmt, family, theirs)
                if not a.ratios:
                    continue
                low, high = min(a.ratios.values()), max(a.ratios.values())
                target = f"≤ {TARGETS[fmt]}x" if fmt in TARGETS else ""
                lines.append(
                    f"| {fmt} | {family} | {theirs} | {a.median:.2f}x ({low:.2f}-{high:.2f}) "
                    f"| {a.total:.2f}x | {len(a.ratios)} | {target} |"
                )
    return lines


def probe_table(rows: list[Row]) -> list[str]:
    lines = [
        "| format | pairs | Pearson r | mean error | mean abs error | max abs error "
        "| per image: mean error (max abs) | same q picked / one step off / images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt in FORMATS[:3]:
        p = analysis.probe(rows, fmt)
        if p is None:
            continue
        each = "; ".join(f"{name} {m:+.1f} ({x:.1f})" for name, (m, x) in p.per_image.items())
        same, near, total = p.q_agreement
        lines.append(
            f"| {fmt} | {p.pairs} | {p.correlation:.3f} | {p.mean_error:+.2f} "
            f"| {p.mean_abs_error:.2f} | {p.max_abs_error:.2f} | {each} "
            f"| {same} / {near} / {total} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    rows: list[Row] = results["rows"]
    defaults = results["service_defaults"]
    sharp = results.get("sharp", {})
    versions = sharp.get("versions", {})
    identical = results.get("ours_identical_to_service", {})
    same = sum(all(v.values()) for v in identical.values())
    parts = [
        f"# Quality run, {results['started']}",
        "",
        f"{results['machine'].get('cpus')} cores; encode times are medians of "
        f"{results['repeat']} runs of the encoder alone. Service defaults: "
        f"{defaults['quality']}, AVIF effort {defaults['avif_effort']}; ours equals the "
        f"service's own output byte for byte on {same} of {len(identical)} opaque images. "
        f"sharp {versions.get('sharp', '?')} (libvips {versions.get('vips', '?')}, "
        f"mozjpeg {versions.get('mozjpeg', '?')}), concurrency {sharp.get('concurrency', '?')}.",
        "",
        "## Answers",
        "",
        *answers(rows),
        "",
        "Against sharp's defaults at equal SSIMULACRA2:",
        "",
        *sharp_table(rows),
        "",
        "The quarter-area probe (half the width) against the full size, default curves:",
        "",
        *probe_table(rows),
        "",
        "## Sweeps",
        "",
    ]
    for kind in ("photo", "drawn"):
        for fmt in FORMATS:
            parts += sweep_table(rows, kind, fmt)
    parts += ["## Each image at each encoder's defaults", ""]
    for kind in ("photo", "drawn"):
        parts += [*defaults_table(rows, kind), ""]
    return "\n".join(parts) + "\n"
