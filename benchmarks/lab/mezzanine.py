"""The mezzanine's quality and speed against a direct render, per image.

    .venv/bin/python -m benchmarks.lab.mezzanine [--widths 600,850,1099] [--formats]

For each photo of the benchmark mix (``corpus.mix_names``), at each width,
the service's render path twice, in process: **direct** (from the original,
as without ``--mezzanine``) and **mezzanine** (the original's mezzanine
built once, then the variant rendered from it). Both are the same output:
the same request, size and format. Reported per image:

- ``ssim``: SSIM of the mezzanine's output against the direct output
  (luma, 8x8-free Gaussian windows of sigma 1.5, the usual constants);
- ``loss``: the PSNR loss, in dB: PSNR(direct, reference) minus
  PSNR(mezzanine, reference), the reference being the exact render of the
  same output (the original decoded whole, colour-managed and upright,
  reduced once by Lanczos 3 to the output's size, never quantised by a
  codec): how much further from the ideal the mezzanine's output is than
  the direct one (negative: closer);
- both for the served JPEG (q80) and for PNG output (the resampling
  alone, no codec noise to hide it);
- the milliseconds of each path (the mezzanine's without its build, which
  is also given, once per image).

``--formats`` first compares the mezzanine's candidate formats (libvips'
native ``.v``, JPEG Q95 4:4:4, lossless WebP) on the same photos: build
and save time, bytes, and the time of an 800-px JPEG from each.

The issue's bounds (loss <= 0.5 dB, SSIM >= 0.995) are asserted by
tests/test_mezzanine.py on the test corpus with ``compare``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("VIPS_CONCURRENCY", "1")

import pyvips

from .. import corpus
from ..competitors import ROOT

_FORMATS = ("v", "jpeg95", "webp-lossless")


@dataclass(frozen=True, slots=True)
class Comparison:
    """One output rendered both ways."""

    size: tuple[int, int]
    mezzanine_size: tuple[int, int]
    direct_psnr: float  # against the reference
    mezzanine_psnr: float
    ssim: float  # mezzanine's output against the direct one
    direct_ssim: float  # against the reference
    mezzanine_ssim: float
    agreement: float  # PSNR of the mezzanine's output against the direct one
    direct_ms: float
    mezzanine_ms: float
    from_mezzanine: bool  # the render did read the mezzanine

    @property
    def loss(self) -> float:
        return self.direct_psnr - self.mezzanine_psnr

    @property
    def ssim_loss(self) -> float:
        return self.direct_ssim - self.mezzanine_ssim


def psnr(first: pyvips.Image, second: pyvips.Image) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB (inf if equal)."""
    difference = first.cast("double") - second.cast("double")
    mean_square = float((difference * difference).avg())
    return math.inf if mean_square == 0 else 10 * math.log10(255 * 255 / mean_square)


def ssim(first: pyvips.Image, second: pyvips.Image) -> float:
    """Mean SSIM of the two images' luma (Wang et al. 2004: Gaussian
    windows of sigma 1.5, K1 0.01, K2 0.03, L 255)."""
    x, y = _luma(first), _luma(second)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: pyvips.Image) -> pyvips.Image:
        return image.gaussblur(1.5, precision="float")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    top = (mu_x * mu_y * 2 + c1) * (cov * 2 + c2)
    bottom = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float((top / bottom).avg())


def _luma(image: pyvips.Image) -> pyvips.Image:
    image = _opaque(image)
    if image.bands >= 3:
        image = image[0] * 0.299 + image[1] * 0.587 + image[2] * 0.114
    return image.cast("float")


def _opaque(image: pyvips.Image) -> pyvips.Image:
    """Alpha flattened onto white, so both sides compare what is seen."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.bands == 2:
        image = image[0]
    return image


def reference(path: str, size: tuple[int, int]) -> pyvips.Image:
    """The exact render of ``path`` at ``size``: decoded whole (upright,
    sRGB), reduced once by Lanczos 3, rounded to 8 bits."""
    whole = pyvips.Image.new_from_file(path).autorot()
    if whole.get_typeof("icc-profile-data") or whole.interpretation == "cmyk":
        whole = whole.icc_transform("srgb", embedded=True, input_profile="srgb")
    if whole.format != "uchar":
        whole = whole.colourspace("srgb" if whole.bands >= 3 else "b-w")
    if whole.hasalpha():
        whole = whole.premultiply()
    resized = whole.resize(size[0] / whole.width, vscale=size[1] / whole.height, kernel="lanczos3")
    if whole.hasalpha():
        resized = resized.unpremultiply()
    # resize rounds its output's size: a pixel short or over, cut or extend.
    resized = resized.gravity("north-west", size[0], size[1], extend="copy")
    return resized.rint().cast("uchar")


class Renderer:
    """The service's render path in process, from an original or its mezzanine."""

    def __init__(self) -> None:
        from service import render as service_render  # noqa: PLC0415 - only where measured
        from service.formats import OutputFormat  # noqa: PLC0415

        service_render.configure_libvips(mezzanine=True)
        self._render = service_render
        self._formats = OutputFormat
        self.policy = service_render.RenderPolicy(
            quality={fmt: 80 for fmt in OutputFormat},
            max_output_size=10**6,
            max_source_pixels=10**9,
            avif_effort=0,
            timeout_seconds=600.0,
        )
        self._scratch = tempfile.mkdtemp(prefix="mezzanine-lab-")

    def facts(self, path: str) -> object:
        source = os.open(path, os.O_RDONLY)
        try:
            return self._render.read_facts(source, allow_svg=False)
        finally:
            os.close(source)

    def build(self, path: str) -> tuple[str, float]:
        """The mezzanine of ``path``, and its build's milliseconds."""
        facts = self.facts(path)
        target = os.path.join(self._scratch, os.path.basename(path) + ".v")
        source = os.open(path, os.O_RDONLY)
        try:
            started = time.perf_counter()
            built = self._render.build_mezzanine(facts, source, target, 600.0)  # type: ignore[arg-type]
            elapsed = (time.perf_counter() - started) * 1000
        finally:
            os.close(source)
        if not built:
            raise RuntimeError(f"no mezzanine of {path}")
        return target, elapsed

    def render(
        self, path: str, width: int, fmt: str, mezzanine: str | None
    ) -> tuple[pyvips.Image, float, bool]:
        """The output of ``path`` at ``width`` in ``fmt``, decoded; its ms;
        whether it read the mezzanine."""
        request = self._render.RenderRequest(
            width=width,
            height=None,
            format=self._formats(fmt),
            background=(255, 255, 255, 255),
        )
        facts = self.facts(path)
        source = os.open(path, os.O_RDONLY)
        try:
            with tempfile.TemporaryFile() as out:
                started = time.perf_counter()
                result = self._render.render(
                    self.policy,
                    request,
                    facts,  # type: ignore[arg-type]
                    source,
                    out.fileno(),
                    mezzanine=mezzanine,
                )
                elapsed = (time.perf_counter() - started) * 1000
                out.seek(0)
                body = out.read()
        finally:
            os.close(source)
        return pyvips.Image.new_from_buffer(body, ""), elapsed, result.from_mezzanine


def compare(renderer: Renderer, path: str, width: int, fmt: str, mezzanine: str) -> Comparison:
    """``path`` at ``width`` in ``fmt``, direct and from ``mezzanine``."""
    direct, direct_ms, _ = renderer.render(path, width, fmt, None)
    through, mezzanine_ms, used = renderer.render(path, width, fmt, mezzanine)
    if (direct.width, direct.height) != (through.width, through.height):
        raise AssertionError(
            f"{path} at {width}: {direct.width}x{direct.height} direct, "
            f"{through.width}x{through.height} from the mezzanine"
        )
    exact = reference(path, (direct.width, direct.height))
    # The loader of the store's files only (render/mezzanine.py).
    mezzanine_image = pyvips.Image.vipsload_source(pyvips.Source.new_from_file(mezzanine))
    return Comparison(
        size=(direct.width, direct.height),
        mezzanine_size=(mezzanine_image.width, mezzanine_image.height),
        direct_psnr=psnr(_opaque(direct), _opaque(exact)),
        mezzanine_psnr=psnr(_opaque(through), _opaque(exact)),
        ssim=ssim(through, direct),
        direct_ssim=ssim(direct, exact),
        mezzanine_ssim=ssim(through, exact),
        agreement=psnr(_opaque(through), _opaque(direct)),
        direct_ms=direct_ms,
        mezzanine_ms=mezzanine_ms,
        from_mezzanine=used,
    )


def formats_table(names: list[str], originals: str) -> list[str]:
    """The candidate formats compared: save ms, MB, 800-px JPEG ms."""
    rows = [
        "| image | mezzanine | format | save ms | MB | 800-px JPEG ms | direct ms |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    scratch = tempfile.mkdtemp(prefix="mezzanine-formats-")
    totals: dict[str, list[float]] = {fmt: [] for fmt in (*_FORMATS, "direct")}
    for name in names:
        path = os.path.join(originals, name)
        image = pyvips.Image.thumbnail(path, 2048, height=2048, size="down").copy_memory()
        direct = _median_ms(_direct_800, path)
        totals["direct"].append(direct)
        size = pyvips.Image.thumbnail(path, 800, height=800, size="down")
        for fmt in _FORMATS:
            target = os.path.join(scratch, "m." + {"v": "v", "jpeg95": "jpg"}.get(fmt, "webp"))
            save_ms = _median_ms(_save, image, fmt, target, runs=1)
            render_ms = _median_ms(_from_file, target, (size.width, size.height))
            totals[fmt].append(render_ms)
            rows.append(
                f"| {name} | {image.width}x{image.height} | {fmt} | {save_ms:.0f} | "
                f"{os.path.getsize(target) / 1e6:.2f} | {render_ms:.0f} | {direct:.0f} |"
            )
    summary = ", ".join(f"{fmt} {sum(ms):.0f} ms" for fmt, ms in totals.items())
    rows.append(f"\nTotal of the 800-px renders over the images: {summary}.")
    return rows


def _direct_800(path: str) -> None:
    pyvips.Image.thumbnail(path, 800, height=800, size="down").jpegsave_buffer(Q=80)


def _save(image: pyvips.Image, fmt: str, target: str) -> None:
    if fmt == "v":
        image.vipssave(target)
    elif fmt == "jpeg95":
        image.jpegsave(target, Q=95, subsample_mode="off")
    else:
        image.webpsave(target, lossless=True, effort=0)


def _from_file(target: str, size: tuple[int, int]) -> None:
    if target.endswith(".v"):
        loaded = pyvips.Image.vipsload_source(pyvips.Source.new_from_file(target))
    else:
        loaded = pyvips.Image.new_from_file(target)
    small = loaded.thumbnail_image(size[0], height=size[1], size="force")
    small.jpegsave_buffer(Q=80)


def _median_ms(action: Callable[..., None], *args: object, runs: int = 3) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action(*args)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def quality_table(names: list[str], originals: str, widths: list[int]) -> list[str]:
    renderer = Renderer()
    rows = [
        "| image | build ms | width | JPEG: PSNR loss dB | SSIM loss | SSIM vs direct "
        "| PNG: SSIM vs direct | PSNR vs direct dB | direct ms | mezzanine ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        path = os.path.join(originals, name)
        mezzanine, build_ms = renderer.build(path)
        for width in widths:
            jpeg = compare(renderer, path, width, "jpeg", mezzanine)
            png = compare(renderer, path, width, "png", mezzanine)
            used = "" if jpeg.from_mezzanine else " (not read: too small)"
            rows.append(
                f"| {name}{used} | {build_ms:.0f} | {jpeg.size[0]} | {jpeg.loss:+.2f} | "
                f"{jpeg.ssim_loss:+.4f} | {jpeg.ssim:.4f} | {png.ssim:.4f} | "
                f"{png.agreement:.1f} | {jpeg.direct_ms:.0f} | {jpeg.mezzanine_ms:.0f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", default="600,850,1099")
    parser.add_argument("--formats", action="store_true", help="compare the candidate formats")
    parser.add_argument("--corpus", default=os.path.join(ROOT, corpus.DEFAULT_DIR))
    args = parser.parse_args(argv)
    corpus.build(args.corpus)
    originals = corpus.originals_dir(args.corpus)
    names = corpus.mix_names()
    if args.formats:
        print("\n".join(formats_table(names, originals)))
        print()
    widths = [int(width) for width in args.widths.split(",")]
    print("\n".join(quality_table(names, originals, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
