"""Parse a request's query parameters into an immutable ``RequestSpec``.

Pure: no I/O, no libvips. Every input gives either a spec or a ``BadRequest``
whose message names the parameter. Numbers are matched against a strict ASCII
grammar first, because ``float()``/``int()`` also accept signs, exponents,
underscores, spaces, ``inf``/``nan`` and non-ASCII digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

from .client_hints import NO_HINTS, ClientHints
from .errors import BadRequest
from .formats import AUTO_QUALITY, FORMAT_NAMES, OutputFormat, Quality

_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?", re.ASCII)
_INTEGER = re.compile(r"[0-9]{1,3}", re.ASCII)
_HEX_COLOUR = re.compile(r"(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})", re.ASCII)
_MAX_DPR = Decimal(4)
# Whole pixels of an original (its sides are at most 100,000 px: limits).
_COORDINATE = re.compile(r"[0-9]{1,6}", re.ASCII)
# Fractions of the original for a focal point: at most 3 decimals, so that
# equal points are equal keys and a thousandth is finer than any crop needs.
_FRACTION = re.compile(r"(?:0(?:\.[0-9]{1,3})?|1(?:\.0{1,3})?|\.[0-9]{1,3})", re.ASCII)
# A sigma in output pixels: at most 2 decimals, for the same reason.
_SIGMA = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2})?", re.ASCII)
_BLUR_SIGMA = (Decimal("0.3"), Decimal(50))
# An overlay's name, as --overlays defines it (service/overlays.py).
_OVERLAY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_SHARPEN_SIGMA = (Decimal("0.3"), Decimal(10))
# trim's difference threshold: how far (in 8-bit levels) a pixel may be from
# the border's colour and still be border.
_TRIM_THRESHOLD = (1, 100)

WHITE = (255, 255, 255, 255)


class Fit(Enum):
    CONTAIN = "contain"  # inside the box, aspect kept
    COVER = "cover"  # fill the box exactly, crop the overflow
    FILL = "fill"  # stretch to the box
    PAD = "pad"  # contain, then pad to the box with bg


class Gravity(Enum):
    CENTRE = "centre"
    NORTH = "north"
    SOUTH = "south"
    EAST = "east"
    WEST = "west"
    ATTENTION = "attention"  # libvips smart crop: features, skin, saturation
    ENTROPY = "entropy"  # libvips smart crop: most information


_GRAVITY_NAMES = {gravity.value: gravity for gravity in Gravity} | {"center": Gravity.CENTRE}


@dataclass(frozen=True, slots=True)
class Crop:
    """A rectangle of the upright original, in its pixels."""

    left: int
    top: int
    width: int
    height: int


class Flip(Enum):
    NONE = ""
    HORIZONTAL = "h"  # mirrored left to right
    VERTICAL = "v"  # upside down
    BOTH = "hv"


_FLIP_NAMES = {"h": Flip.HORIZONTAL, "v": Flip.VERTICAL, "hv": Flip.BOTH, "vh": Flip.BOTH}

# Parameters that set the output's size: a preset replaces them all.
SIZE_PARAMETERS = frozenset({"scalex", "scaley", "dpr", "fit", "gravity"})
# With --presets-only these come from presets alone too, with or without a
# preset: a free q (100 values) or bg (16.7 million) would let anyone mint
# variants no cache absorbs, which is what the mode is there to stop. A
# format stays free: there are five.
PRESET_ONLY_OUTPUT_PARAMETERS = frozenset(
    {"q", "bg", "crop", "rotate", "flip", "fp", "trim", "blur", "sharpen", "overlay"}
)

Presets = Mapping[str, Sequence[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class OverlayChoice:
    """A named overlay of --overlays, and what of it shapes the output (its
    file's digest and placement: ``OverlayFile.fingerprint``), for the key."""

    name: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What the client asked for, normalised; independent of the original.

    Normalised so that requests for the same output compare equal: a
    ``gravity`` without ``fit=cover`` is dropped, and a fit other than
    contain needs both sides of the box (with one side it is contain).
    """

    width: int | None = None
    height: int | None = None
    fit: Fit = Fit.CONTAIN
    gravity: Gravity = Gravity.CENTRE
    format: OutputFormat | None = None  # None: keep the original's format
    auto_format: bool = False  # format=auto: negotiate from Accept
    quality: Quality | None = None  # None: the per-format default; "auto": q=auto
    background: tuple[int, int, int, int] = WHITE  # RGBA, for flattening alpha
    crop: Crop | None = None
    rotate: int = 0  # clockwise degrees, after EXIF orientation: 0, 90, 180, 270
    flip: Flip = Flip.NONE
    # fit=cover's focal point: fractions of the upright original's (or the
    # crop's) width and height; None without cover.
    focal_point: tuple[Decimal, Decimal] | None = None
    trim: int | None = None  # remove a uniform border: the difference threshold
    blur: Decimal | None = None  # Gaussian sigma in output pixels (dpr applied)
    sharpen: Decimal | None = None  # sigma in output pixels (dpr applied)
    # The request's or preset's overlay, else --default-overlay; None: none.
    overlay: OverlayChoice | None = None
    signature: str | None = None


@dataclass(slots=True)
class _Fields:
    width: Decimal | None = None
    height: Decimal | None = None
    format: OutputFormat | None = None
    auto_format: bool = False
    quality: Quality | None = None
    dpr: Decimal = Decimal(1)
    fit: Fit = Fit.CONTAIN
    gravity: Gravity = Gravity.CENTRE
    preset: str | None = None
    background: tuple[int, int, int, int] = WHITE
    crop: Crop | None = None
    rotate: int = 0
    flip: Flip = Flip.NONE
    focal_point: tuple[Decimal, Decimal] | None = None
    trim: int | None = None
    blur: Decimal | None = None
    sharpen: Decimal | None = None
    overlay: str | None = None
    signature: str | None = None


def _decimal(name: str, value: str) -> Decimal:
    if not _DECIMAL.fullmatch(value):
        raise BadRequest(f"{name} must be a positive number, got {_shown(value)}")
    return Decimal(value)


def _set_width(fields: _Fields, name: str, value: str) -> None:
    fields.width = _decimal(name, value)


def _set_height(fields: _Fields, name: str, value: str) -> None:
    fields.height = _decimal(name, value)


def _set_format(fields: _Fields, name: str, value: str) -> None:
    lowered = value.lower()
    if lowered == "auto":
        fields.auto_format = True
        return
    chosen = FORMAT_NAMES.get(lowered)
    if chosen is None:
        allowed = ", ".join([*FORMAT_NAMES, "auto"])
        raise BadRequest(f"{name} must be one of {allowed}, got {_shown(value)}")
    fields.format = chosen


def _set_quality(fields: _Fields, name: str, value: str) -> None:
    if value.lower() == AUTO_QUALITY:  # case-insensitive, as format=auto is
        fields.quality = AUTO_QUALITY
        return
    if not _INTEGER.fullmatch(value) or not 1 <= int(value) <= 100:
        raise BadRequest(
            f"{name} must be a whole number from 1 to 100 or auto, got {_shown(value)}"
        )
    fields.quality = int(value)


def _set_dpr(fields: _Fields, name: str, value: str) -> None:
    dpr = _decimal(name, value)
    if not 1 <= dpr <= _MAX_DPR:
        raise BadRequest(f"{name} must be from 1 to 4, got {_shown(value)}")
    fields.dpr = dpr


def _set_background(fields: _Fields, name: str, value: str) -> None:
    if not _HEX_COLOUR.fullmatch(value):
        raise BadRequest(f"{name} must be a hex colour rrggbb or rrggbbaa, got {_shown(value)}")
    channels = [int(value[i : i + 2], 16) for i in range(0, len(value), 2)]
    alpha = channels[3] if len(channels) == 4 else 255
    fields.background = (channels[0], channels[1], channels[2], alpha)


def _set_fit(fields: _Fields, name: str, value: str) -> None:
    try:
        fields.fit = Fit(value.lower())
    except ValueError:
        allowed = ", ".join(fit.value for fit in Fit)
        raise BadRequest(f"{name} must be one of {allowed}, got {_shown(value)}") from None


def _set_gravity(fields: _Fields, name: str, value: str) -> None:
    gravity = _GRAVITY_NAMES.get(value.lower())
    if gravity is None:
        allowed = ", ".join(gravity.value for gravity in Gravity)
        raise BadRequest(f"{name} must be one of {allowed}, got {_shown(value)}")
    fields.gravity = gravity


def _set_crop(fields: _Fields, name: str, value: str) -> None:
    parts = value.split(",")
    if len(parts) != 4 or not all(_COORDINATE.fullmatch(part) for part in parts):
        raise BadRequest(f"{name} must be x,y,w,h in whole pixels, got {_shown(value)}")
    left, top, width, height = (int(part) for part in parts)
    if width < 1 or height < 1:
        raise BadRequest(f"{name}: the width and height must be at least 1 pixel")
    fields.crop = Crop(left, top, width, height)


def _set_rotate(fields: _Fields, name: str, value: str) -> None:
    if value not in ("0", "90", "180", "270"):
        raise BadRequest(f"{name} must be 0, 90, 180 or 270 (clockwise), got {_shown(value)}")
    fields.rotate = int(value)


def _set_flip(fields: _Fields, name: str, value: str) -> None:
    flip = _FLIP_NAMES.get(value.lower())
    if flip is None:
        raise BadRequest(f"{name} must be h, v or hv, got {_shown(value)}")
    fields.flip = flip


def _set_focal_point(fields: _Fields, name: str, value: str) -> None:
    parts = value.split(",")
    if len(parts) != 2 or not all(_FRACTION.fullmatch(part) for part in parts):
        raise BadRequest(f"{name} must be x,y as fractions from 0 to 1, got {_shown(value)}")
    fields.focal_point = (Decimal(parts[0]).normalize(), Decimal(parts[1]).normalize())


def _set_trim(fields: _Fields, name: str, value: str) -> None:
    low, high = _TRIM_THRESHOLD
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}")
    fields.trim = int(value)


def _sigma(name: str, value: str, limits: tuple[Decimal, Decimal]) -> Decimal:
    low, high = limits
    if not _SIGMA.fullmatch(value) or not low <= Decimal(value) <= high:
        raise BadRequest(f"{name} must be a sigma from {low} to {high}, got {_shown(value)}")
    return Decimal(value)


def _set_blur(fields: _Fields, name: str, value: str) -> None:
    fields.blur = _sigma(name, value, _BLUR_SIGMA)


def _set_sharpen(fields: _Fields, name: str, value: str) -> None:
    fields.sharpen = _sigma(name, value, _SHARPEN_SIGMA)


def _set_overlay(fields: _Fields, name: str, value: str) -> None:
    if not _OVERLAY_NAME.fullmatch(value):
        raise BadRequest(f"{name} must be an overlay's name, got {_shown(value)}")
    fields.overlay = value


def _set_preset(fields: _Fields, name: str, value: str) -> None:
    fields.preset = value


def _set_signature(fields: _Fields, name: str, value: str) -> None:
    fields.signature = value


_Setter = Callable[[_Fields, str, str], None]

# Each accepted name, its canonical name (aliases share one), and its parser.
_PARAMETERS: dict[str, tuple[str, _Setter]] = {
    "scalex": ("scalex", _set_width),
    "w": ("scalex", _set_width),
    "scaley": ("scaley", _set_height),
    "h": ("scaley", _set_height),
    "encoding": ("encoding", _set_format),
    "format": ("encoding", _set_format),
    "q": ("q", _set_quality),
    "quality": ("q", _set_quality),
    "dpr": ("dpr", _set_dpr),
    "bg": ("bg", _set_background),
    "fit": ("fit", _set_fit),
    "gravity": ("gravity", _set_gravity),
    "crop": ("crop", _set_crop),
    "rotate": ("rotate", _set_rotate),
    "flip": ("flip", _set_flip),
    "fp": ("fp", _set_focal_point),
    "trim": ("trim", _set_trim),
    "blur": ("blur", _set_blur),
    "sharpen": ("sharpen", _set_sharpen),
    "overlay": ("overlay", _set_overlay),
    "preset": ("preset", _set_preset),
    "s": ("s", _set_signature),
}


def validate_presets(
    presets: Presets, *, max_output_size: int, overlays: Mapping[str, str] | None = None
) -> None:
    """Check every preset at start-up: each must parse on its own (an
    ``overlay`` must be one of ``overlays``)."""
    for name, pairs in presets.items():
        for key, _ in pairs:
            if key in ("preset", "s"):
                raise BadRequest(f"preset {name!r} may not set {key!r}")
        try:
            parse_spec(pairs, max_output_size=max_output_size, overlays=overlays)
        except BadRequest as error:
            raise BadRequest(f"preset {name!r}: {error.message}") from None


def parse_spec(
    pairs: Iterable[tuple[str, str]],
    *,
    max_output_size: int,
    presets: Presets | None = None,
    presets_only: bool = False,
    overlays: Mapping[str, str] | None = None,
    default_overlay: str | None = None,
    ladder: bool = False,
    hints: ClientHints = NO_HINTS,
) -> RequestSpec:
    """Build the spec from decoded query pairs, or raise ``BadRequest``.

    ``overlays`` maps each overlay's name to its fingerprint (``--overlays``);
    ``default_overlay`` is on every output a preset does not give another
    (a request cannot: it could pick the faintest of the overlays). With a
    width ladder (``ladder``) a ``w`` may accompany a preset: it replaces
    the preset's width, in output pixels, and scales its height alike (the
    ladder then snaps it). ``hints`` (--client-hints) give the width and
    DPR of a request without a preset that names neither; they are never
    the reason for a 400 (a size they would take past the limit is cut)."""
    fields = _Fields()
    seen = _apply(fields, pairs)
    ladder_width = ladder and fields.preset is not None and "scalex" in seen
    ad_hoc = sorted(PRESET_ONLY_OUTPUT_PARAMETERS & seen.keys())
    if presets_only and ad_hoc:
        raise BadRequest(f"only presets set {seen[ad_hoc[0]]} here: use preset=<name>")
    if default_overlay is not None and "overlay" in seen:
        raise BadRequest("overlay is set by the server here (--default-overlay) or a preset")
    if fields.preset is not None:
        sizing = sorted(SIZE_PARAMETERS & set(seen) - ({"scalex"} if ladder_width else set()))
        if sizing:
            raise BadRequest(f"preset cannot be combined with {seen[sizing[0]]}")
        preset = (presets or {}).get(fields.preset)
        if preset is None:
            raise BadRequest(f"preset {_shown(fields.preset)} is not defined")
        # The preset's own parameters, under the request's other ones.
        own = {name for name, _ in preset if _PARAMETERS[name][0] not in seen}
        seen |= _apply(fields, [(name, value) for name, value in preset if name in own])
    elif presets_only and seen.keys() & SIZE_PARAMETERS:
        raise BadRequest("only preset sizes are served here: use preset=<name>")
    may_hint = fields.preset is None and not presets_only
    hinted = may_hint and "dpr" not in seen and hints.dpr is not None
    if hinted and hints.dpr is not None:
        fields.dpr = hints.dpr
    width = _pixels(seen.get("scalex"), fields.width, fields.dpr, max_output_size, cut=hinted)
    height = _pixels(seen.get("scaley"), fields.height, fields.dpr, max_output_size, cut=hinted)
    if ladder_width:
        width, height = _ladder_width_on_preset(fields, presets or {}, max_output_size)
    elif may_hint and width is None and hints.width is not None:
        width = min(hints.width, max_output_size)
    fit = fields.fit if width is not None and height is not None else Fit.CONTAIN
    if fields.focal_point is not None and "gravity" in seen:
        raise BadRequest(f"fp cannot be combined with {seen['gravity']}: both place the crop")
    return RequestSpec(
        width=width,
        height=height,
        fit=fit,
        gravity=fields.gravity if fit is Fit.COVER else Gravity.CENTRE,
        format=fields.format,
        auto_format=fields.auto_format,
        quality=fields.quality,
        background=fields.background,
        crop=fields.crop,
        rotate=fields.rotate,
        flip=fields.flip,
        focal_point=fields.focal_point if fit is Fit.COVER else None,
        trim=fields.trim,
        blur=_in_output_pixels(seen.get("blur"), fields.blur, fields.dpr, _BLUR_SIGMA, cut=hinted),
        sharpen=_in_output_pixels(
            seen.get("sharpen"), fields.sharpen, fields.dpr, _SHARPEN_SIGMA, cut=hinted
        ),
        overlay=_overlay(fields.overlay or default_overlay, overlays or {}),
        signature=fields.signature,
    )


def _overlay(name: str | None, overlays: Mapping[str, str]) -> OverlayChoice | None:
    if name is None:
        return None
    fingerprint = overlays.get(name)
    if fingerprint is None:
        raise BadRequest(f"overlay {_shown(name)} is not defined")
    return OverlayChoice(name, fingerprint)


def _ladder_width_on_preset(
    fields: _Fields, presets: Presets, limit: int
) -> tuple[int | None, int | None]:
    """A ladder ``w`` with a preset: the width in output pixels, and the
    preset's height scaled by the same factor as its width (without a
    preset width, the height follows the picture)."""
    assert fields.width is not None  # ladder_width: w was given
    assert fields.preset is not None
    width = _pixels("w", fields.width, Decimal(1), limit)
    preset = _Fields()
    _apply(preset, presets[fields.preset])
    if preset.width is None or preset.height is None or width is None:
        return width, None
    scaled = preset.height * width / preset.width
    return width, max(1, min(limit, int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))))


def _in_output_pixels(
    name: str | None,
    sigma: Decimal | None,
    dpr: Decimal,
    limits: tuple[Decimal, Decimal],
    *,
    cut: bool = False,
) -> Decimal | None:
    """The sigma in output pixels: its range holds after ``dpr`` too (a
    sigma of 200 output pixels costs four times one of 50); ``cut``: a
    hinted DPR took it past the range, which is no client's error."""
    if name is None or sigma is None:
        return None
    scaled = (sigma * dpr).normalize()
    if scaled > limits[1] and cut:
        return limits[1]
    if scaled > limits[1]:
        raise BadRequest(f"{name} must be at most {limits[1]} output pixels (after dpr)")
    return scaled


def _apply(fields: _Fields, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Run each parameter's parser; return canonical name -> name as given."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        known = _PARAMETERS.get(name)
        if known is None:
            raise BadRequest(f"unknown parameter {_shown(name)}")
        canonical, setter = known
        if canonical in seen:
            first = seen[canonical]
            detail = "given twice" if first == name else f"given as both {first} and {name}"
            raise BadRequest(f"{name} is {detail}")
        seen[canonical] = name
        setter(fields, name, value)
    return seen


def _pixels(
    name: str | None, value: Decimal | None, dpr: Decimal, limit: int, *, cut: bool = False
) -> int | None:
    """``value`` times ``dpr`` in whole pixels; ``cut``: a hinted DPR
    took it past the limit, which is cut rather than refused."""
    if name is None or value is None:
        return None
    pixels = int((value * dpr).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if pixels < 1:
        raise BadRequest(f"{name} must be at least 1 pixel")
    if pixels > limit and cut:
        return limit
    if pixels > limit:
        raise BadRequest(f"{name} must be at most {limit} pixels (after dpr)")
    return pixels


def _shown(text: str) -> str:
    """A short, printable rendering of user text for an error message."""
    clipped = text if len(text) <= 40 else text[:37] + "..."
    return repr(clipped)
