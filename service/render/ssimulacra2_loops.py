"""SSIMULACRA2's per-pixel loops, compiled with numba.

What ``ssimulacra2`` computes at each scale, written as loops that numba
compiles for this machine's vector unit (``fastmath`` lets it reorder the
float32 sums into SIMD lanes). A loop reads its planes once where numpy
made one pass over memory per operation (26 for a plane's blur, some 300
for a score), and numpy's passes were at their floor (0.26 ns an element,
float32 streamed through the cache): fusing them is the whole gain.

The loops allocate nothing: every array is the caller's, numpy's, so
tracemalloc counts it (the decode budget's reservation for a search is a
measured peak). The caller hands each loop its workspace (``workspace``:
a few dozen rows of the largest scale, reused by every scale and every
score of a search): arrays allocated per call are fresh pages from the
kernel, and zeroing them took as long as the blur (a score of 800x533: 19
ms with its arrays allocated per call, 8 ms without). The blur runs a row
at a time, its rows across kept in a ring of nine, and each row's blur is
used as it is made: blurred in place, a scale's planes (17 MB for a score
at 800x600) streamed through memory five times, and a score took 12.8 ms
where it takes 10.4 (a reference 11.8 where it takes 8.6).

``nogil``: a score runs in a render thread beside the event loop of the
same process, so none of these holds the GIL while it runs.

``cache``: compiled once per machine into ``__pycache__`` beside this file
(or under ``NUMBA_CACHE_DIR``); where neither can be written, once per
process. The first compile takes about 6 s, a load from the cache a few
tenths. The blur's loops are written for ``ssimulacra2.taps``' 9 taps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import types
from numba.core.types import Type
from numba.core.typing.templates import Signature
from numba.extending import intrinsic

Planes = npt.NDArray[np.float32]  # channels x height x width
Line = npt.NDArray[np.float32]  # one row, or planes flattened
Table = npt.NDArray[np.float32]  # alpha x value
Sums = npt.NDArray[np.float64]

_Function = TypeVar("_Function", bound=Callable[..., object])

# libjxl's opsin absorbance matrix and bias (kM00..kM22, kB0).
_M00, _M01, _M02 = 0.30, 1.0 - 0.078 - 0.30, 0.078
_M10, _M11, _M12 = 0.23, 1.0 - 0.078 - 0.23, 0.078
_M20, _M21 = 0.24342268924547819, 0.20476744424496821
_M22 = 1.0 - _M20 - _M21
_BIAS = 0.0037930732552754493
_Y_OFFSET = 0.01 - _BIAS ** (1 / 3)
_C2 = 0.0009
# The blur's rows across kept at once: its 9 taps' window down a column.
_RING = 9


def _compiled(function: _Function) -> _Function:
    """``function`` compiled on its first call, on disk where it can be."""
    # fastmath without its approximate reciprocals ("arcp"): with them an
    # image against itself scored 99.87, not 100.
    fastmath = {"nnan", "ninf", "nsz", "reassoc", "contract"}
    try:
        compiled = numba.njit(
            function, nogil=True, fastmath=fastmath, error_model="numpy", cache=True
        )
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        compiled = numba.njit(function, nogil=True, fastmath=fastmath, error_model="numpy")
    return cast(_Function, compiled)


def workspace_size(width: int) -> int:
    """The floats of ``xyb``'s, ``scale_sums``' and ``reference_maps``'
    workspace for scales up to ``width``: the blur's 3 padded lines, its
    ring of 9 rows across for 3 quantities and a row of each one's blur
    (``xyb`` needs 3 rows of it)."""
    return 3 * (width + 8) + 3 * _RING * width + 3 * width


def _linear_loops(pixels: npt.NDArray[np.uint8], lut: Table, out: Planes) -> None:
    """8-bit sRGB (height x width x 3, or 4 with alpha) to linear planes by
    ``lut[alpha, value]`` (pixels without alpha read its opaque row)."""
    height, width, channels = pixels.shape
    for y in range(height):
        row = pixels[y]
        red, green, blue = out[0, y], out[1, y], out[2, y]
        for x in range(width):
            alpha = row[x, 3] if channels == 4 else 255
            red[x] = lut[alpha, row[x, 0]]
            green[x] = lut[alpha, row[x, 1]]
            blue[x] = lut[alpha, row[x, 2]]


def _half_loops(linear: Planes, out: Planes) -> None:
    """The next scale: 2x2 means in linear light; an odd last row or column
    is the mean of what it has (libjxl's copy of it makes a pair)."""
    channels, height, width = linear.shape
    for c in range(channels):
        plane, target = linear[c], out[c]
        for y in range(out.shape[1]):
            top, bottom = plane[2 * y], plane[min(2 * y + 1, height - 1)]
            row = target[y]
            for x in range(out.shape[2]):
                left, right = 2 * x, min(2 * x + 1, width - 1)
                row[x] = np.float32(0.25) * (top[left] + top[right] + bottom[left] + bottom[right])


def xyb(linear: Planes, out: Planes, work: Line) -> Planes:
    """Linear RGB to libjxl's XYB, made positive (MakePositiveXYB), into
    ``out`` (which may be ``linear``), through ``work`` (``workspace``'s)."""
    _xyb(linear, out, work)
    return out


def _xyb_loops(linear: Planes, out: Planes, work: Line) -> None:
    """The opsin absorbance matrix plus its bias, the cube roots, then X =
    7 (c0 - c1) + 0.42, Y = (c0 + c1) / 2 - cbrt(bias) + 0.01, B = c2 -
    (c0 + c1) / 2 + 0.55. A row at a time into ``work``, then copied: the
    compiled loop checks its arrays for overlap at run time, and with
    ``out`` the same planes as ``linear`` (a score's, in place) it took its
    unvectorised branch: 7.0 ms for a score's six scales of 800x533,
    against 2.0 through ``work``."""
    _, height, width = linear.shape
    x_row, y_row, b_row = work[:width], work[width : 2 * width], work[2 * width : 3 * width]
    for y in range(height):
        red, green, blue = linear[0, y], linear[1, y], linear[2, y]
        for x in range(width):
            r, g, b = red[x], green[x], blue[x]
            c0 = _cube_root(np.float32(_M00 * r + _M01 * g + _M02 * b + _BIAS))
            c1 = _cube_root(np.float32(_M10 * r + _M11 * g + _M12 * b + _BIAS))
            c2 = _cube_root(np.float32(_M20 * r + _M21 * g + _M22 * b + _BIAS))
            half = np.float32(0.5) * (c0 + c1)
            x_row[x] = np.float32(7.0) * (c0 - c1) + np.float32(0.42)
            y_row[x] = half + np.float32(_Y_OFFSET)
            b_row[x] = c2 - half + np.float32(0.55)
        # Copied by a loop: numba's slice assignment took a third of the
        # conversion's time in place (2.3 against 1.5 ms for 800x600).
        x_out, y_out, b_out = out[0, y], out[1, y], out[2, y]
        for x in range(width):
            x_out[x], y_out[x], b_out[x] = x_row[x], y_row[x], b_row[x]


def _bit_cast(source: Type, target: Type, target_bits: ir.Type) -> object:
    """A compiled function that reads a ``source`` value's bits as a
    ``target`` (numba types of one width; ``target_bits`` is its LLVM
    type): numba has no such cast."""

    def typed(typing_context: object, value: Type) -> tuple[Signature, object]:
        def codegen(
            context: object, builder: ir.IRBuilder, signature: Signature, args: list[ir.Value]
        ) -> ir.Value:
            return builder.bitcast(args[0], target_bits)

        return target(source), codegen

    return intrinsic(typed)


_float_bits = cast(
    Callable[[np.float32], np.uint32], _bit_cast(types.float32, types.uint32, ir.IntType(32))
)
_bits_float = cast(
    Callable[[np.uint32], np.float32], _bit_cast(types.uint32, types.float32, ir.FloatType())
)


def _cube_root_loops(x: np.float32) -> np.float32:
    """The cube root of a float32 from 1e-12 to 1e12 (the metric's are
    0.0038-1.0038), within 3 units in the last place: a guess from the
    bits (a third of them, re-biased), then two of Halley's steps, each
    cubing the error (past 1e28 the cube overflows).

    numpy's ``cbrt`` is vectorised only where numpy has AVX-512 (its SVML
    loops); elsewhere it calls the C library's a value at a time. On the
    2-core AVX2 machines this project is tested on that was 24 ms of an
    800x533 score's 45, and 24 of a reference's 50; in these loops the
    roots of as many values take 0.6 ms."""
    y = _bits_float(_float_bits(x) // np.uint32(3) + np.uint32(0x2A5137A0))
    cube = y * y * y
    y = y * (cube + np.float32(2.0) * x) / (np.float32(2.0) * cube + x)
    cube = y * y * y
    return y * (cube + np.float32(2.0) * x) / (np.float32(2.0) * cube + x)


def _across_loops(lines: Planes, taps: Line, ring: Planes, row: int, height: int) -> None:
    """The 9-tap Gaussian of ``taps`` over each of ``lines`` (a row of
    each quantity, 4 zeros either side), into ``ring``'s slot for ``row``
    (zeros from ``height`` on). Row r is slot (r + 4) % 9, so the four
    rows above the plane are slots 0-3."""
    c0, c1, c2, c3, c4 = taps[4], taps[5], taps[6], taps[7], taps[8]
    slot = (row + 4) % _RING
    if row >= height:
        ring[:, slot] = 0.0
        return
    for index in range(lines.shape[0]):
        line, out = lines[index], ring[index, slot]
        for x in range(out.size):
            out[x] = (
                c0 * line[x + 4]
                + c1 * (line[x + 3] + line[x + 5])
                + c2 * (line[x + 2] + line[x + 6])
                + c3 * (line[x + 1] + line[x + 7])
                + c4 * (line[x] + line[x + 8])
            )


def _down_loops(ring: Planes, y: int, taps: Line, out: Planes) -> None:
    """The Gaussian's pass down the columns at ``y``, from ``ring``'s nine
    rows around it (y - 4 .. y + 4, zeros outside the plane), into ``out``
    (a row of each quantity)."""
    c0, c1, c2, c3, c4 = taps[4], taps[5], taps[6], taps[7], taps[8]
    for index in range(ring.shape[0]):
        rows, row = ring[index], out[index]
        a4, a3, a2, a1 = (
            rows[y % _RING],
            rows[(y + 1) % _RING],
            rows[(y + 2) % _RING],
            rows[(y + 3) % _RING],
        )
        a0 = rows[(y + 4) % _RING]
        b1, b2, b3, b4 = (
            rows[(y + 5) % _RING],
            rows[(y + 6) % _RING],
            rows[(y + 7) % _RING],
            rows[(y + 8) % _RING],
        )
        for x in range(row.size):
            row[x] = (
                c0 * a0[x]
                + c1 * (a1[x] + b1[x])
                + c2 * (a2[x] + b2[x])
                + c3 * (a3[x] + b3[x])
                + c4 * (a4[x] + b4[x])
            )


def _stream_loops(work: Line, quantities: int, width: int) -> tuple[Planes, Planes, Planes]:
    """``workspace``'s parts for a blur of ``quantities`` planes a row at a
    time: the padded lines (zero ends), the ring of rows across and a row
    of each quantity's blur."""
    padded = width + 8
    lines = work[: quantities * padded].reshape(quantities, padded)
    lines[:] = 0.0
    start = quantities * padded
    ring = work[start : start + quantities * _RING * width].reshape(quantities, _RING, width)
    start += quantities * _RING * width
    out = work[start : start + quantities * width].reshape(quantities, width)
    return lines, ring, out


def _fill_loops(lines: Planes, values: Line, references: Line) -> None:
    """One row of the quantities a blur streams, between ``lines``' zero
    ends: the XYB ``values``, their squares and (a score's third) their
    products with the reference's."""
    for x in range(values.size):
        value = values[x]
        lines[0, x + 4] = value
        lines[1, x + 4] = value * value
        if lines.shape[0] == 3:
            lines[2, x + 4] = references[x] * value


def _advance_loops(stream: tuple[Planes, Planes, Planes], taps: Line, row: int, height: int) -> int:
    """Row ``row`` of ``stream``'s lines (filled while under ``height``)
    across into its ring, then down the columns four rows above it into
    its out: that row's index, or -1 while the ring is still filling."""
    lines, ring, out = stream
    if row == 0:  # a new plane: the rows above it
        ring[:, :4] = 0.0
    _across(lines, taps, ring, row, height)
    y = row - 4
    if y >= 0:
        _down(ring, y, taps, out)
    return y


def _reference_maps_loops(xyb: Planes, taps: Line, work: Line, blurred: Planes) -> None:
    """A reference scale's blur and blurred square, into ``blurred`` (2 x
    its channels), a row at a time."""
    channels, height, width = xyb.shape
    stream = _stream(work, 2, width)
    lines, _, out = stream
    for c in range(channels):
        for row in range(height + 4):
            if row < height:
                _fill(lines, xyb[c, row], xyb[c, row])
            y = _advance(stream, taps, row, height)
            if y >= 0:
                mu, squares = blurred[c, y], blurred[channels + c, y]
                for x in range(width):
                    mu[x], squares[x] = out[0, x], out[1, x]


def _scale_sums_loops(
    reference: tuple[Planes, Planes, Planes],
    xyb: Planes,
    taps: Line,
    work: Line,
    sums: Sums,
) -> None:
    """One scale of a score against ``reference`` (its XYB, mu and blurred
    square), into ``sums`` (18, zeros): per channel, the sums of
    the SSIM map, the ringing map and the detail-lost map (bands 0-8, kind
    x 3 + channel), then the sums of their 4th powers (9-17), each map
    clamped at 0. The blurs of the distorted image, of its square and of
    its product with the reference are made a row at a time and summed as
    they come: as planes blurred in place (9 of the scale's size, 17 MB at
    800x600) they went through memory five times, and a full scale took
    6.8 ms where it takes 5.2."""
    ref_xyb, ref_mu, ref_squares = reference
    channels, height, width = xyb.shape
    stream = _stream(work, 3, width)
    lines, _, out = stream
    for c in range(channels):
        for row in range(height + 4):
            if row < height:
                _fill(lines, xyb[c, row], ref_xyb[c, row])
            y = _advance(stream, taps, row, height)
            if y >= 0:
                _row_sums(
                    (ref_xyb[c, y], ref_mu[c, y], ref_squares[c, y]),
                    (xyb[c, y], out[0], out[1], out[2]),
                    sums[c::3],
                )


def _row_sums_loops(
    reference: tuple[Line, Line, Line], distorted: tuple[Line, Line, Line, Line], sums: Sums
) -> None:
    """One row's terms added to ``sums`` (SSIM, ringing, detail lost, then
    their 4th powers): ``reference`` its row of XYB, mu and blurred
    square, ``distorted`` its XYB, mu, blurred square and blurred product
    with the reference's XYB."""
    xyb1, mu1, squares1 = reference
    xyb2, mu2, squares2, products = distorted
    ssim = ringing = lost = np.float32(0.0)
    ssim4 = ringing4 = lost4 = np.float32(0.0)
    for x in range(mu1.size):
        mean1, mean2, square1, square2 = mu1[x], mu2[x], squares1[x], squares2[x]
        product = products[x]
        # The SSIM map, 1 - (1 - delta^2) (2 cov + C2) / (var1 + var2 + C2)
        # with delta = mu1 - mu2, as one fraction: its numerator, var1 +
        # var2 - 2 cov + delta^2 (2 cov + C2), is exactly 0 for equal
        # images however fastmath orders the sums (1 less the ratio was
        # not: an image against itself scored 99.87).
        delta = mean1 - mean2
        covariance = product - mean1 * mean2
        apart = (square1 + square2 - np.float32(2.0) * product) - delta * delta
        numerator = apart + delta * delta * (np.float32(2.0) * covariance + np.float32(_C2))
        denominator = (square1 - mean1 * mean1) + (square2 - mean2 * mean2) + np.float32(_C2)
        d = numerator / denominator
        d = max(d, np.float32(0.0))
        ssim += d
        ssim4 += (d * d) * (d * d)
        # (1 + |xyb2 - mu2|) / (1 + |xyb1 - mu1|) - 1, split by its sign
        # (the reference's half computed here, not kept: 3 planes less)
        ratio = (np.float32(1.0) + abs(xyb2[x] - mean2)) / (
            np.float32(1.0) + abs(xyb1[x] - mean1)
        ) - np.float32(1.0)
        up = max(ratio, np.float32(0.0))
        down = max(-ratio, np.float32(0.0))
        ringing += up
        ringing4 += (up * up) * (up * up)
        lost += down
        lost4 += (down * down) * (down * down)
    # A row's sums in float32 (a few thousand terms of 0..1 lose nothing a
    # score shows), the image's in float64.
    sums[0] += ssim
    sums[1] += ringing
    sums[2] += lost
    sums[3] += ssim4
    sums[4] += ringing4
    sums[5] += lost4


linear_from_srgb = _compiled(_linear_loops)
half = _compiled(_half_loops)
_cube_root = _compiled(_cube_root_loops)
_xyb = _compiled(_xyb_loops)
_across = _compiled(_across_loops)
_down = _compiled(_down_loops)
_stream = _compiled(_stream_loops)
_fill = _compiled(_fill_loops)
_advance = _compiled(_advance_loops)
_row_sums = _compiled(_row_sums_loops)
reference_maps = _compiled(_reference_maps_loops)
scale_sums = _compiled(_scale_sums_loops)
