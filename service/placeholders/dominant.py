"""The dominant colour: the most common colour of a picture, not its mean.

The mean of a red poppy on green grass is brown, a colour the picture does
not have. Instead each pixel falls into a coarse bin of the sRGB cube (3
bits a channel: 512 bins, each 32 levels wide), the most populated bin
wins (the lowest bin on a tie, so the answer is deterministic), and the
answer is the mean of that bin's pixels, the picture's own shade rather
than the bin's centre. Pixels under half opacity do not count (a
transparent background carries no visible colour), unless that is every
pixel. Meant for the ~100 px render /info makes: 10,000 pixels, one pass.
"""

from __future__ import annotations

_BITS = 3  # per channel
_SHIFT = 8 - _BITS
_OPAQUE_ENOUGH = 128


def dominant_colour(width: int, height: int, rgba: bytes) -> str:
    """The dominant colour of ``width`` x ``height`` RGBA pixels, as ``#rrggbb``."""
    if width < 1 or height < 1 or len(rgba) != width * height * 4:
        raise ValueError("the pixels must be width x height x 4 bytes")
    sums = _bin_sums(rgba, _OPAQUE_ENOUGH) or _bin_sums(rgba, 0)
    count, red, green, blue = max(sums.values(), key=lambda totals: totals[0])
    return "#%02x%02x%02x" % (  # noqa: UP031
        _mean(red, count),
        _mean(green, count),
        _mean(blue, count),
    )


def _bin_sums(rgba: bytes, min_alpha: int) -> dict[int, list[int]]:
    """Per bin with pixels of at least ``min_alpha``: [count, sum r, sum g,
    sum b], in ascending bin order (``max`` keeps the first on a tie)."""
    sums: dict[int, list[int]] = {}
    for j in range(0, len(rgba), 4):
        if rgba[j + 3] < min_alpha:
            continue
        r, g, b = rgba[j], rgba[j + 1], rgba[j + 2]
        key = (r >> _SHIFT) << (2 * _BITS) | (g >> _SHIFT) << _BITS | (b >> _SHIFT)
        totals = sums.get(key)
        if totals is None:
            sums[key] = [1, r, g, b]
        else:
            totals[0] += 1
            totals[1] += r
            totals[2] += g
            totals[3] += b
    return dict(sorted(sums.items()))


def _mean(total: int, count: int) -> int:
    return (2 * total + count) // (2 * count)  # rounded, halves up
