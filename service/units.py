"""Parsing of human-written sizes such as ``500MB`` or ``2GiB``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([a-zA-Z]*)", re.ASCII)


def parse_byte_size(text: str) -> int:
    """Return the number of bytes ``text`` names; ValueError when it names none."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 2GiB or plain bytes)")
    whole, fraction, unit = match.groups()
    multiplier = _UNITS.get(unit.lower())
    if multiplier is None:
        raise ValueError(f"unknown size unit {unit!r} in {text!r} (kB, MB, GB, KiB, MiB, GiB)")
    fraction = fraction or ""
    divisor: int = 10 ** len(fraction)
    return int(whole + fraction) * multiplier // divisor
