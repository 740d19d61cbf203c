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

from .errors import BadRequest
from .formats import FORMAT_NAMES, OutputFormat

_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,12})?", re.ASCII)
_INTEGER = re.compile(r"[0-9]{1,3}", re.ASCII)
_HEX_COLOUR = re.compile(r"(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})", re.ASCII)
_MAX_DPR = Decimal(4)

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

# Parameters that set the output's size: a preset replaces them all.
SIZE_PARAMETERS = frozenset({"scalex", "scaley", "dpr", "fit", "gravity"})
# With --presets-only these come from presets alone too, with or without a
# preset: a free q (100 values) or bg (16.7 million) would let anyone mint
# variants no cache absorbs, which is what the mode is there to stop. A
# format stays free: there are five.
PRESET_ONLY_OUTPUT_PARAMETERS = frozenset({"q", "bg"})

Presets = Mapping[str, Sequence[tuple[str, str]]]


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
    quality: int | None = None  # None: the per-format default
    background: tuple[int, int, int, int] = WHITE  # RGBA, for flattening alpha
    signature: str | None = None


@dataclass(slots=True)
class _Fields:
    width: Decimal | None = None
    height: Decimal | None = None
    format: OutputFormat | None = None
    auto_format: bool = False
    quality: int | None = None
    dpr: Decimal = Decimal(1)
    fit: Fit = Fit.CONTAIN
    gravity: Gravity = Gravity.CENTRE
    preset: str | None = None
    background: tuple[int, int, int, int] = WHITE
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
    if not _INTEGER.fullmatch(value) or not 1 <= int(value) <= 100:
        raise BadRequest(f"{name} must be a whole number from 1 to 100, got {_shown(value)}")
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
    "preset": ("preset", _set_preset),
    "s": ("s", _set_signature),
}


def validate_presets(presets: Presets, *, max_output_size: int) -> None:
    """Check every preset at start-up: each must parse on its own."""
    for name, pairs in presets.items():
        for key, _ in pairs:
            if key in ("preset", "s"):
                raise BadRequest(f"preset {name!r} may not set {key!r}")
        try:
            parse_spec(pairs, max_output_size=max_output_size)
        except BadRequest as error:
            raise BadRequest(f"preset {name!r}: {error.message}") from None


def parse_spec(
    pairs: Iterable[tuple[str, str]],
    *,
    max_output_size: int,
    presets: Presets | None = None,
    presets_only: bool = False,
) -> RequestSpec:
    """Build the spec from decoded query pairs, or raise ``BadRequest``."""
    fields = _Fields()
    seen = _apply(fields, pairs)
    ad_hoc = sorted(PRESET_ONLY_OUTPUT_PARAMETERS & seen.keys())
    if presets_only and ad_hoc:
        raise BadRequest(f"only presets set {seen[ad_hoc[0]]} here: use preset=<name>")
    if fields.preset is not None:
        sizing = sorted(SIZE_PARAMETERS & set(seen))
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
    width = _pixels(seen.get("scalex"), fields.width, fields.dpr, max_output_size)
    height = _pixels(seen.get("scaley"), fields.height, fields.dpr, max_output_size)
    fit = fields.fit if width is not None and height is not None else Fit.CONTAIN
    return RequestSpec(
        width=width,
        height=height,
        fit=fit,
        gravity=fields.gravity if fit is Fit.COVER else Gravity.CENTRE,
        format=fields.format,
        auto_format=fields.auto_format,
        quality=fields.quality,
        background=fields.background,
        signature=fields.signature,
    )


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


def _pixels(name: str | None, value: Decimal | None, dpr: Decimal, limit: int) -> int | None:
    if name is None or value is None:
        return None
    pixels = int((value * dpr).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if pixels < 1:
        raise BadRequest(f"{name} must be at least 1 pixel")
    if pixels > limit:
        raise BadRequest(f"{name} must be at most {limit} pixels (after dpr)")
    return pixels


def _shown(text: str) -> str:
    """A short, printable rendering of user text for an error message."""
    clipped = text if len(text) <= 40 else text[:37] + "..."
    return repr(clipped)
