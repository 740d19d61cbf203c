"""``--overlays FILE``: named overlay images (watermarks) from a TOML file.

Pure: the TOML's tables become ``OverlayFile`` values, each holding its
image file's bytes as read at start and their SHA-256 digest. Renders use
those bytes, never the file again, so the digest in a variant's key is the
digest of what was composited: replacing the file changes the keys at the
next start, and nothing before it. Decoding and checking the image is the
render's (``render.overlay.check_overlay``, run by the settings at start).

    [logo]
    image = "logo.png"        # relative to this file's directory, or absolute
    gravity = "south-east"    # centre (default), north, south, east, west,
                              # north-east, north-west, south-east, south-west
    margin = 8                # px from the edges of the output (default 0)
    opacity = 0.6             # 0-1, times the image's own alpha (default 1)
    width = 0.25              # fraction of the output's width, (0, 1]

Every problem is a ``ValueError`` with a one-line message.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from enum import Enum

# A name is a query parameter's value and part of every key that carries it.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
# A logo, not a photograph: the image is kept in memory, encoded, for the
# life of the process (and its resized copies: render.overlay).
MAX_OVERLAY_FILE_BYTES = 32 * 2**20
# px: far beyond any output side (--max-output-size is at most a few thousand).
_MAX_MARGIN = 100_000
_KEYS = frozenset({"image", "gravity", "margin", "opacity", "width"})


class OverlayGravity(Enum):
    """Where an overlay sits on the output: a side, a corner or the centre."""

    CENTRE = "centre"
    NORTH = "north"
    SOUTH = "south"
    EAST = "east"
    WEST = "west"
    NORTH_EAST = "north-east"
    NORTH_WEST = "north-west"
    SOUTH_EAST = "south-east"
    SOUTH_WEST = "south-west"

    @property
    def horizontal(self) -> str:
        """'west', 'east' or 'centre': which edge the overlay keeps to."""
        for side in ("east", "west"):
            if side in self.value:
                return side
        return "centre"

    @property
    def vertical(self) -> str:
        """'north', 'south' or 'centre'."""
        for side in ("north", "south"):
            if side in self.value:
                return side
        return "centre"


_GRAVITY_NAMES = {gravity.value: gravity for gravity in OverlayGravity} | {
    "center": OverlayGravity.CENTRE
}


@dataclass(frozen=True, slots=True)
class OverlayFile:
    """One named overlay: its image's bytes and where and how it goes."""

    name: str
    path: str  # absolute; for messages only: renders use ``data``
    gravity: OverlayGravity
    margin: int  # px of the output, from the edges the gravity names
    opacity: float  # 0-1, multiplies the image's alpha
    width: float  # (0, 1]: the overlay's width over the output's
    data: bytes = field(repr=False, compare=False)
    digest: str  # SHA-256 of ``data``, hex

    @property
    def fingerprint(self) -> str:
        """Everything about this overlay that shapes a render: its file's
        digest and its placement (the part of a variant's key it gives)."""
        return (
            f"{self.digest[:32]};{self.gravity.value};m{self.margin};"
            f"o{self.opacity:g};w{self.width:g}"
        )


def load_overlays(text: str) -> dict[str, OverlayFile]:
    """The overlays of the TOML file at ``text`` (``~`` expanded), each
    image read whole; ``ValueError`` for the first problem."""
    if not text.strip():
        raise ValueError("must not be empty")
    path = os.path.abspath(os.path.expanduser(text.strip()))
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"cannot read {path!r}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path!r} is not valid TOML: {error}") from None
    if not document:
        raise ValueError(f"{path!r} defines no overlay")
    base = os.path.dirname(path)
    return {name: _overlay(name, table, base) for name, table in document.items()}


def _overlay(name: str, table: object, base: str) -> OverlayFile:
    if not _NAME.fullmatch(name):
        raise ValueError(f"overlay {name!r}: a name is 1-64 letters, digits, '-' or '_'")
    if not isinstance(table, dict):
        raise ValueError(f"overlay {name!r} must be a table (image, gravity, margin, ...)")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        allowed = ", ".join(sorted(_KEYS))
        raise ValueError(f"overlay {name!r}: unknown key {unknown[0]!r} (keys: {allowed})")
    for required in ("image", "width"):
        if required not in table:
            raise ValueError(f"overlay {name!r}: {required} is required")
    image = table["image"]
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f"overlay {name!r}: image must be a file name")
    image_path = os.path.join(base, os.path.expanduser(image))  # an absolute one stays
    data = _read_image(name, image_path)
    return OverlayFile(
        name=name,
        path=image_path,
        gravity=_gravity(name, table.get("gravity", "centre")),
        margin=_margin(name, table.get("margin", 0)),
        opacity=_fraction(name, "opacity", table.get("opacity", 1.0), allow_zero=True),
        width=_fraction(name, "width", table["width"], allow_zero=False),
        data=data,
        digest=hashlib.sha256(data).hexdigest(),
    )


def _read_image(name: str, path: str) -> bytes:
    """The file's bytes: a regular file (never a device or a FIFO, which
    would never end), within ``MAX_OVERLAY_FILE_BYTES``."""
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise ValueError(f"overlay {name!r}: {path!r} is not a regular file")
            data = handle.read(MAX_OVERLAY_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"overlay {name!r}: cannot read {path!r}: {error.strerror}") from None
    if len(data) > MAX_OVERLAY_FILE_BYTES:
        limit = MAX_OVERLAY_FILE_BYTES // 2**20
        raise ValueError(f"overlay {name!r}: {path!r} is over the limit of {limit} MiB")
    if not data:
        raise ValueError(f"overlay {name!r}: {path!r} is empty")
    return data


def _gravity(name: str, value: object) -> OverlayGravity:
    gravity = _GRAVITY_NAMES.get(value.lower()) if isinstance(value, str) else None
    if gravity is None:
        allowed = ", ".join(gravity.value for gravity in OverlayGravity)
        raise ValueError(f"overlay {name!r}: gravity must be one of {allowed}, got {value!r}")
    return gravity


def _margin(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MARGIN:
        raise ValueError(
            f"overlay {name!r}: margin must be a whole number of px from 0, got {value!r}"
        )
    return value


def _fraction(name: str, key: str, value: object, *, allow_zero: bool) -> float:
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    low = "0" if allow_zero else "over 0"
    if number is None or not (0 <= number <= 1) or (number == 0 and not allow_zero):
        raise ValueError(f"overlay {name!r}: {key} must be a number from {low} to 1, got {value!r}")
    return number
