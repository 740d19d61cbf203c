"""ThumbHash: an image's placeholder in about 25 bytes.

A port of the reference encoder (``rgbaToThumbHash`` in evanw/thumbhash,
js/thumbhash.js), operation for operation: the same sums in the same order,
JavaScript's ``Math.round`` (half up, which Python's ``round`` is not), so
the bytes equal the reference's for the same pixels (tests/vectors/). The
image is composited onto its average colour and turned into luminance (L),
yellow-blue (P), red-green (Q) and alpha (A); each channel's lowest DCT
terms are quantised into the header and 4-bit nibbles.

The text form is the reference's own: the bytes in standard base64 with
padding (its examples' ``thumbHashToBase64``, ``btoa`` of the bytes).

The input must fit in 100x100 (the reference refuses more: the hash keeps
a 7x7 corner of the DCT, so more pixels cost time and add nothing).
"""

from __future__ import annotations

import base64
import math

MAX_SIDE = 100


def rgba_to_thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of ``width`` x ``height`` RGBA pixels (not premultiplied)."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"{width}x{height} doesn't fit in {MAX_SIDE}x{MAX_SIDE}")
    if width < 1 or height < 1 or len(rgba) != width * height * 4:
        raise ValueError("the pixels must be width x height x 4 bytes")
    pixels = width * height

    # The average colour, weighted by alpha.
    avg_r = avg_g = avg_b = avg_a = 0.0
    for j in range(0, pixels * 4, 4):
        alpha = rgba[j + 3] / 255
        avg_r += alpha / 255 * rgba[j]
        avg_g += alpha / 255 * rgba[j + 1]
        avg_b += alpha / 255 * rgba[j + 2]
        avg_a += alpha
    if avg_a:
        avg_r /= avg_a
        avg_g /= avg_a
        avg_b /= avg_a

    has_alpha = avg_a < pixels
    l_limit = 5 if has_alpha else 7  # fewer luminance terms to leave room for alpha
    longest = max(width, height)
    lx = max(1, _round(l_limit * width / longest))
    ly = max(1, _round(l_limit * height / longest))

    # RGBA to LPQA, composited onto the average colour.
    lum: list[float] = []
    yellow_blue: list[float] = []
    red_green: list[float] = []
    alphas: list[float] = []
    for j in range(0, pixels * 4, 4):
        alpha = rgba[j + 3] / 255
        r = avg_r * (1 - alpha) + alpha / 255 * rgba[j]
        g = avg_g * (1 - alpha) + alpha / 255 * rgba[j + 1]
        b = avg_b * (1 - alpha) + alpha / 255 * rgba[j + 2]
        lum.append((r + g + b) / 3)
        yellow_blue.append((r + g) / 2 - b)
        red_green.append(r - g)
        alphas.append(alpha)

    l_dc, l_ac, l_scale = _encode_channel(lum, width, height, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(yellow_blue, width, height, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(red_green, width, height, 3, 3)
    a_dc, a_ac, a_scale = _encode_channel(alphas, width, height, 5, 5) if has_alpha else _NONE

    is_landscape = width > height
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (
        (ly if is_landscape else lx)
        | (_round(63 * p_scale) << 3)
        | (_round(63 * q_scale) << 9)
        | (int(is_landscape) << 15)
    )
    hash_ = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    if has_alpha:
        hash_.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))

    # The varying terms, two 4-bit nibbles a byte, low nibble first.
    terms = [*l_ac, *p_ac, *q_ac, *(a_ac if has_alpha else [])]
    start = len(hash_)
    hash_.extend([0] * ((len(terms) + 1) // 2))
    for index, term in enumerate(terms):
        hash_[start + (index >> 1)] |= _round(15 * term) << ((index & 1) << 2)
    return bytes(hash_)


def thumbhash_base64(width: int, height: int, rgba: bytes) -> str:
    """The ThumbHash as the reference's examples print it: standard base64."""
    return base64.b64encode(rgba_to_thumbhash(width, height, rgba)).decode("ascii")


_NONE: tuple[float, list[float], float] = (0.0, [], 0.0)


def _encode_channel(
    channel: list[float], width: int, height: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    """The DC term, the AC terms normalised to 0..1, and their scale: the
    DCT terms in the triangle ``cx * ny < nx * (ny - cy)``, row by row."""
    dc = 0.0
    ac: list[float] = []
    scale = 0.0
    for cy in range(ny):
        cx = 0
        while cx * ny < nx * (ny - cy):
            fx = [math.cos(math.pi / width * cx * (x + 0.5)) for x in range(width)]
            f = 0.0
            for y in range(height):
                fy = math.cos(math.pi / height * cy * (y + 0.5))
                row = y * width
                # One running sum in the reference's order (rows, then
                # columns), each term (value * fx) * fy, as it multiplies.
                for x in range(width):
                    f += channel[row + x] * fx[x] * fy
            f /= width * height
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * term for term in ac]
    return dc, ac, scale


def _round(value: float) -> int:
    """JavaScript's Math.round: the nearest integer, halves up (towards
    +infinity). Not ``floor(value + 0.5)``, whose addition rounds
    0.49999999999999994 up to 1."""
    whole = math.floor(value)
    return whole + 1 if value - whole >= 0.5 else whole
