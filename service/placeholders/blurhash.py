"""BlurHash: an image's placeholder as a short base-83 string.

A port of the reference encoder, Wolt's TypeScript package (npm
``blurhash`` 2.x, ``encode``), operation for operation so the string equals
the reference's for the same pixels (tests/vectors/): each component is the
mean of the linear-light pixels times its cosine basis, the DC term is
stored as sRGB, the AC terms relative to their maximum and square-rooted.

Two of the reference's ways are kept as they are, since clients compare
strings, not pictures: the maximum that scales the AC terms is the largest
*signed* term (the C encoder takes absolute values; a picture whose
strongest term is negative clips it), and alpha is ignored (transparent
pixels count with whatever colour they carry).

We encode 4x3 components (``COMPONENTS``), 28 characters: the authors'
own usual choice ("We usually go with 4 by 3", their README), and enough
for a placeholder that is blurred anyway. The text is the hash; decoding
needs the same component count, which the first character gives.
"""

from __future__ import annotations

import math

COMPONENTS = (4, 3)  # across, down

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _srgb_to_linear(value: int) -> float:
    v = value / 255
    if v <= 0.04045:
        return v / 12.92
    return math.pow((v + 0.055) / 1.055, 2.4)


# The reference converts every sample; a table gives the same numbers.
_LINEAR = tuple(_srgb_to_linear(value) for value in range(256))


def encode_blurhash(
    width: int, height: int, rgba: bytes, components: tuple[int, int] = COMPONENTS
) -> str:
    """The BlurHash of ``width`` x ``height`` RGBA pixels (alpha ignored)."""
    across, down = components
    if not (1 <= across <= 9 and 1 <= down <= 9):
        raise ValueError("BlurHash must have between 1 and 9 components")
    if width < 1 or height < 1 or len(rgba) != width * height * 4:
        raise ValueError("the pixels must be width x height x 4 bytes")
    red = [_LINEAR[value] for value in rgba[0::4]]
    green = [_LINEAR[value] for value in rgba[1::4]]
    blue = [_LINEAR[value] for value in rgba[2::4]]
    channels = (red, green, blue)
    factors = [_factor(channels, width, height, (x, y)) for y in range(down) for x in range(across)]
    dc, ac = factors[0], factors[1:]

    text = _base83(across - 1 + (down - 1) * 9, 1)
    if ac:
        largest = max(max(factor) for factor in ac)  # signed, as the reference
        quantised = math.floor(max(0, min(82, math.floor(largest * 166 - 0.5))))
        maximum = (quantised + 1) / 166
        text += _base83(quantised, 1)
    else:
        maximum = 1.0
        text += _base83(0, 1)
    text += _base83(_encode_dc(dc), 4)
    for factor in ac:
        text += _base83(_encode_ac(factor, maximum), 2)
    return text


def _factor(
    channels: tuple[list[float], list[float], list[float]],
    width: int,
    height: int,
    component: tuple[int, int],
) -> tuple[float, float, float]:
    """One component: the mean of the linear pixels times its basis, summed
    in the reference's order (columns, then rows)."""
    red, green, blue = channels
    x, y = component
    normalisation = 1 if x == 0 and y == 0 else 2
    across = [math.cos(math.pi * x * i / width) for i in range(width)]
    down = [math.cos(math.pi * y * j / height) for j in range(height)]
    r = g = b = 0.0
    for i in range(width):
        column = normalisation * across[i]
        for j in range(height):
            basis = column * down[j]
            index = i + j * width
            r += basis * red[index]
            g += basis * green[index]
            b += basis * blue[index]
    scale = 1 / (width * height)
    return r * scale, g * scale, b * scale


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return math.trunc(v * 12.92 * 255 + 0.5)
    return math.trunc((1.055 * math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5)


def _encode_dc(value: tuple[float, float, float]) -> int:
    r, g, b = (_linear_to_srgb(channel) for channel in value)
    return (r << 16) + (g << 8) + b


def _encode_ac(value: tuple[float, float, float], maximum: float) -> int:
    r, g, b = (
        math.floor(max(0, min(18, math.floor(_sign_pow(channel / maximum, 0.5) * 9 + 9.5))))
        for channel in value
    )
    return r * 19 * 19 + g * 19 + b


def _sign_pow(value: float, exponent: float) -> float:
    return (-1 if value < 0 else 1) * math.pow(abs(value), exponent)


def _base83(value: int, length: int) -> str:
    return "".join(_DIGITS[(value // 83 ** (length - n)) % 83] for n in range(1, length + 1))
