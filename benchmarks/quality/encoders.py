"""What the harness encodes, and the in-process encoders (libvips, Pillow).

Every setting encodes the same reference pixels (``images``). ``ours`` is
the service's save step (``service/render/save.py``): its options are
rebuilt here from the service's own defaults and ``png_save_options``, and
the harness checks, per image, that they give the service's own output
byte for byte. The sweeps vary one family of libvips options over q: the
curves a choice of defaults is made on. ``pillow`` is the baseline's save
(``benchmarks/baseline_app.py``: the service's quality, else Pillow's
defaults); ``sharp`` settings are encoded by ``benchmarks.quality.sharp``.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyvips
from PIL import Image

from service.render.encoding import ANNEX_K_TABLE, jpeg_options, near_own_quality
from service.render.save import png_save_options

from ..competitors import service_defaults

SUFFIX = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif", "png": ".png"}
Q_SWEEP = (40, 50, 60, 70, 80, 85, 90, 95)
AVIF_Q_SWEEP = (35, 45, 50, 55, 60, 65, 70, 80)
PALETTE_Q = (60, 80, 90, 100)
MOZJPEG = {
    "trellis_quant": True,
    "overshoot_deringing": True,
    "optimize_scans": True,
    "interlace": True,
    "quant_table": 3,
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One encoder configuration; ``family`` names its curve (its options but q)."""

    encoder: str  # "ours", "sweep", "pillow", "sharp"
    format: str
    family: str
    q: int | None
    options: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.encoder} {self.format} {self.family}" + (
            f" q{self.q}" if self.q is not None else ""
        )


def _jpeg(quality: int, unchanged_annex_k: int | None) -> dict[str, object]:
    """The service's JPEG options at ``quality``; ``unchanged_annex_k``: the
    q of an Annex K original served as it is (service.render.encoding)."""
    keeps = near_own_quality(unchanged_annex_k, quality)
    return jpeg_options(quality, keeps_annex_k=keeps)


def ours(*, has_alpha: bool, drawn: bool, unchanged_annex_k: int | None) -> list[Setting]:
    """The service's defaults, as its save step sets them."""
    quality, effort = service_defaults()
    png = png_save_options(has_alpha=has_alpha, drawn=drawn)
    jpeg = _jpeg(quality["jpeg"], unchanged_annex_k)
    return [
        Setting("ours", "jpeg", "default", quality["jpeg"], jpeg),
        Setting("ours", "webp", "default", quality["webp"], {}),
        Setting("ours", "avif", "default", quality["avif"], {"effort": effort}),
        Setting("ours", "png", "default", None, png),
    ]


def sweeps(*, has_alpha: bool, drawn: bool, unchanged_annex_k: int | None) -> list[Setting]:
    """The libvips option families over q (palette PNGs for drawn images)."""
    effort = service_defaults()[1]
    families: list[tuple[str, str, dict[str, object], tuple[int, ...]]] = [
        *(("jpeg", "default", _jpeg(q, unchanged_annex_k), (q,)) for q in Q_SWEEP),
        # Pipeline 13's default (and sharp's): the standard's table at every q.
        ("jpeg", "annex k", {"optimize_coding": True, "quant_table": ANNEX_K_TABLE}, Q_SWEEP),
        ("jpeg", "trellis", {"optimize_coding": True, "trellis_quant": True}, Q_SWEEP),
        ("jpeg", "mozjpeg", {"optimize_coding": True, **MOZJPEG}, Q_SWEEP),
        ("webp", "default", {}, Q_SWEEP),
        ("webp", "smart_subsample", {"smart_subsample": True}, Q_SWEEP),
        ("webp", "effort 6", {"effort": 6}, Q_SWEEP),
        ("avif", "default", {"effort": effort}, AVIF_Q_SWEEP),
        ("avif", "effort 2", {"effort": 2}, AVIF_Q_SWEEP),
        ("avif", "444", {"effort": effort, "subsample_mode": "off"}, AVIF_Q_SWEEP),
    ]
    if drawn:
        png = png_save_options(has_alpha=has_alpha, drawn=drawn)
        for palette_effort in (1, 7, 10):
            families.append(
                ("png", f"palette effort {palette_effort}",
                 {**png, "palette": True, "effort": palette_effort}, PALETTE_Q)
            )  # fmt: skip
    return [
        Setting("sweep", fmt, family, q, options)
        for fmt, family, options, qs in families
        for q in qs
    ]


def pillow() -> list[Setting]:
    """The baseline's save: the service's quality for lossy formats, else Pillow's defaults."""
    quality = service_defaults()[0]
    return [
        Setting("pillow", fmt, "default", quality.get(fmt), {}) for fmt in ("jpeg", "webp", "avif")
    ] + [Setting("pillow", "png", "default", None, {})]


def sharp() -> list[Setting]:
    """sharp 0.34's defaults, ipx's (sharp's, but for progressive JPEG:
    ipx 3 sets ``jpegProgressive`` on every image it makes), and sharp's
    ``mozjpeg: true``."""
    return [
        Setting("sharp", "jpeg", "default", 80, {}),
        Setting("sharp", "jpeg", "ipx", 80, {"progressive": True}),
        Setting("sharp", "jpeg", "mozjpeg", 80, {"mozjpeg": True}),
        Setting("sharp", "webp", "default", 80, {}),
        Setting("sharp", "avif", "default", 50, {}),
        Setting("sharp", "png", "default", None, {}),
    ]


def vips_options(setting: Setting) -> dict[str, object]:
    options: dict[str, object] = {"keep": "none", **setting.options}
    if setting.q is not None:
        options["Q"] = setting.q
    return options


def encode_vips(image: pyvips.Image, setting: Setting) -> bytes:
    data: bytes = image.write_to_buffer(SUFFIX[setting.format], **vips_options(setting))
    return data


def to_pillow(image: pyvips.Image) -> Image.Image:
    array = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )
    return Image.fromarray(array, "RGB")


def encode_pillow(image: Image.Image, setting: Setting) -> bytes:
    out = io.BytesIO()
    options = {"quality": setting.q} if setting.q is not None else {}
    image.save(out, setting.format.upper(), **options)
    return out.getvalue()


def timed(encode: Callable[[], bytes], repeat: int) -> tuple[bytes, float]:
    """The output and the median encode time in ms of ``repeat`` runs."""
    times = []
    data = b""
    for _ in range(repeat):
        started = time.perf_counter()
        data = encode()
        times.append((time.perf_counter() - started) * 1000)
    return data, statistics.median(times)
