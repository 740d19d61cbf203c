"""SSIMULACRA2 (libjxl's perceptual metric), in compiled loops over numpy planes.

The metric of ``tools/ssimulacra2.cc`` in libjxl, as the ``ssimulacra2``
package (0.3.0) transcribes it, with libjxl's own blur: sRGB to linear
light, six scales halved in linear light, at each the XYB colour space
(made positive), a Gaussian of sigma 1.5, an SSIM map without the
luminance constant, and two edge maps (ringing added, detail lost); each
map's mean and 4-norm per channel, 108 weights, and the polynomial that
maps the sum to 100 (identical) and below. The quality harness scores
with this module too (benchmarks/quality/scores.py), and
tests/test_quality_scores.py holds it to libjxl's own scores.

The blur is libjxl's recursive Gaussian (``CreateRecursiveGaussian``,
Charalampidis 2016, three second-order sections), which treats every
pixel outside the image as zero. Its recursion is exactly a 9-tap filter
at sigma 1.5 (derived below in plain Python), applied to zero-padded
planes as four symmetric pairs and a centre tap.

Where it runs: in the render threads, beside the event loop of the same
process, so it must not hold the GIL for long. The per-pixel work is in
``ssimulacra2_loops`` (numba, without the GIL); this module keeps the
metric's structure and its constants. One 800x600 score takes about 10
ms and a reference about 9 (the same maths as numpy array operations on
float32 planes, at numpy's floor, took over 4x as long; the operations
done with libvips took 10x numpy's time, as its float convolutions and
per-pixel maths are not vectorised).

Images with alpha are scored as libjxl's tool scores them: blended on a
dark (0.1) and a light (0.9) grey in sRGB values, the lower score kept.
A reference is prepared once (its half of every scale, 3 planes of 3
channels: about 48 bytes an output pixel with the scales) for the many
candidates of a search, with the workspace its scores reuse (the linear
scales, in which a candidate's XYB is made in place: 16 bytes an output
pixel, and the loops' few rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from . import ssimulacra2_loops as loops

Pixels = npt.NDArray[np.uint8]  # height x width x 3 or 4 (sRGB, alpha)
Planes = npt.NDArray[np.float32]  # channels x height x width

SIGMA = 1.5
SCALES = 6
SMALLEST = 8  # no scale narrower or lower than this
# libjxl's 108 weights: per channel (X, Y, B), per scale, per norm (1, 4),
# three of them: the SSIM map, ringing added, detail lost.
_WEIGHTS = (
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0,
    0.0004371155730107379, 0.0, 1.1041726426657346, 0.00066284834129271,
    0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833,
    0.0, 0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053,
    0.0004550992113792063, 0.0, 0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0,
    7.466890328078848, 0.0, 17.445833984131262, 0.0006235601634041466, 0.0, 0.0,
    6.683678146179332, 0.00037724407979611296, 1.027889937768264, 225.20515300849274, 0.0,
    0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757,
    0.0004485436923833408, 0.0, 0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0,
    8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
    0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0,
    0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
)  # fmt: skip
_GREYS = (0.1, 0.9)  # what alpha is blended on (libjxl's tool)


def recursive_gaussian(sigma: float = SIGMA) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """libjxl's recursive Gaussian for ``sigma``: (radius N, n2 and d1 of
    its three sections), solved as ``CreateRecursiveGaussian`` solves them."""
    radius = round(3.2795 * sigma + 0.2546)
    step = math.pi / (2.0 * radius)
    omega = (step, 3.0 * step, 5.0 * step)
    p = (1 / math.tan(omega[0] / 2), -1 / math.tan(omega[1] / 2), 1 / math.tan(omega[2] / 2))
    r = (
        p[0] ** 2 / math.sin(omega[0]),
        -(p[1] ** 2) / math.sin(omega[1]),
        p[2] ** 2 / math.sin(omega[2]),
    )
    rho = [math.exp(-0.5 * sigma * sigma * w * w) / radius for w in omega]
    d13 = p[0] * r[1] - r[0] * p[1]
    zeta15 = (p[1] * r[2] - r[1] * p[2]) / d13
    zeta35 = (p[2] * r[0] - r[2] * p[0]) / d13
    matrix = (p, r, (zeta15, zeta35, 1.0))
    gamma = (1.0, radius * radius - sigma * sigma, zeta15 * rho[0] + zeta35 * rho[1] + rho[2])
    beta = _solve3(matrix, gamma)
    n2 = tuple(-b * math.cos(w * (radius + 1.0)) for b, w in zip(beta, omega, strict=True))
    d1 = tuple(-2.0 * math.cos(w) for w in omega)
    return radius, n2, d1


def _solve3(
    matrix: tuple[tuple[float, ...], ...], rhs: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``matrix`` x = ``rhs`` for a 3x3 system, by Cramer's rule."""

    def det(m: tuple[tuple[float, ...], ...]) -> float:
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    whole = det(matrix)
    solution = []
    for column in range(3):
        replaced = tuple(
            tuple(rhs[row] if j == column else matrix[row][j] for j in range(3)) for row in range(3)
        )
        solution.append(det(replaced) / whole)
    return solution[0], solution[1], solution[2]


def scan(line: list[float]) -> list[float]:
    """libjxl's 1-D scan of ``line``: out[n] is the sum over the sections of
    y[n] = n2 (in[n-N-1] + in[n+N-1]) - d1 y[n-1] - y[n-2], zero outside."""
    radius, n2, d1 = recursive_gaussian()
    size = len(line)

    def at(index: int) -> float:
        return line[index] if 0 <= index < size else 0.0

    out = [0.0] * size
    for k, d in zip(n2, d1, strict=True):
        previous = before = 0.0
        for n in range(-radius + 1, size):
            y = k * (at(n - radius - 1) + at(n + radius - 1)) - d * previous - before
            before, previous = previous, y
            if n >= 0:
                out[n] += y
    return out


@cache
def taps() -> tuple[float, ...]:
    """The scan's impulse response. Its poles cancel: the recursion is
    exactly a (2N-1)-tap filter (9 taps at sigma 1.5)."""
    radius = recursive_gaussian()[0]
    impulse = [0.0] * (4 * radius + 1)
    impulse[2 * radius] = 1.0
    return tuple(scan(impulse)[radius + 1 : 3 * radius])


@cache
def _taps_array() -> npt.NDArray[np.float32]:
    return np.array(taps(), np.float32)


@cache
def _linear_lut(grey: float) -> loops.Table:
    """8-bit sRGB values to linear light (0..1, IEC 61966-2-1), each value
    first blended on ``grey`` (0..1) by each alpha: [alpha, value].
    Blended in float64, as the values between the 8-bit levels matter."""
    alpha = np.arange(256, dtype=np.float64)[:, None] / 255.0
    values = np.arange(256, dtype=np.float64)[None, :] / 255.0 * alpha + (1.0 - alpha) * grey
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    return linear.astype(np.float32)


def _sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Each scale's height and width (halves rounded up)."""
    sizes: list[tuple[int, int]] = []
    while len(sizes) < SCALES and min(height, width) >= SMALLEST:
        sizes.append((height, width))
        height, width = (height + 1) // 2, (width + 1) // 2
    return sizes


def _pyramid(pixels: Pixels, grey: float | None, buffer: Planes) -> list[Planes]:
    """Linear RGB at each scale (alpha blended on ``grey``, 0..1), in
    ``buffer`` (the sizes' planes in turn)."""
    levels: list[Planes] = []
    start = 0
    for height, width in _sizes(*pixels.shape[:2]):
        level = buffer[start : start + 3 * height * width].reshape(3, height, width)
        start += level.size
        if not levels:
            loops.linear_from_srgb(pixels, _linear_lut(0.0 if grey is None else grey), level)
        else:
            loops.half(levels[-1], level)
        levels.append(level)
    return levels


@dataclass(frozen=True, slots=True)
class _Scale:
    """One scale of the reference: XYB, its blur, the blur of its square."""

    xyb: Planes
    mu: Planes
    squares: Planes


class Reference:
    """A reference image (8-bit sRGB, alpha or not), prepared once."""

    def __init__(self, pixels: Pixels) -> None:
        if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8:
            raise ValueError(
                f"expected 8-bit RGB or RGBA pixels, got {pixels.shape} {pixels.dtype}"
            )
        self.shape = pixels.shape
        self.alpha = pixels.shape[2] == 4
        self._greys: tuple[float | None, ...] = _GREYS if self.alpha else (None,)
        height, width = pixels.shape[:2]
        pyramid = sum(3 * h * w for h, w in _sizes(height, width))
        work = loops.workspace_size(width)
        # All of a reference's planes in one allocation: under the
        # service's allocator each buffer of 1 MiB or more is a fresh
        # mapping, and one large mapping lies on huge pages where a dozen
        # smaller ones took a page fault per 4 KiB of their ends.
        memory = np.empty(pyramid + work + len(self._greys) * 3 * pyramid, np.float32)
        # Reused by every score, so not for two threads at once: the linear
        # scales (each score's XYB too, in place) and the loops' workspace.
        self._linear = memory[:pyramid]
        self._work = memory[pyramid : pyramid + work]
        kept = memory[pyramid + work :]
        self._scales = [
            self._prepare(pixels, grey, kept[index * 3 * pyramid : (index + 1) * 3 * pyramid])
            for index, grey in enumerate(self._greys)
        ]

    def _prepare(self, pixels: Pixels, grey: float | None, kept: Planes) -> list[_Scale]:
        """The scales of ``pixels`` on ``grey``, kept in ``kept`` (each
        scale's XYB, its blur and its square's blur: 9 floats a pixel)."""
        scales = []
        start = 0
        for level in _pyramid(pixels, grey, self._linear):
            channels, height, width = level.shape
            # XYB, its blur (mu) and its square's blur, each channels planes.
            planes = kept[start : start + 3 * level.size].reshape(3, channels, height, width)
            start += planes.size
            xyb = loops.xyb(level, planes[0], self._work)
            loops.reference_maps(
                xyb, _taps_array(), self._work, planes[1:].reshape(-1, height, width)
            )
            scales.append(_Scale(xyb, planes[1], planes[2]))
        return scales

    def score(self, distorted: Pixels) -> float:
        """SSIMULACRA2 of ``distorted`` (same size) against this reference."""
        if distorted.shape[:2] != self.shape[:2]:
            raise ValueError(f"sizes differ: {self.shape[:2]} and {distorted.shape[:2]}")
        if distorted.shape[2] == 4 and not self.alpha:
            raise ValueError("the distorted image has alpha, the reference has not")
        if self.alpha and distorted.shape[2] == 3:
            opaque = np.full((*distorted.shape[:2], 1), 255, np.uint8)
            distorted = np.concatenate([distorted, opaque], axis=2)
        return min(
            self._score(scales, _pyramid(distorted, grey, self._linear))
            for grey, scales in zip(self._greys, self._scales, strict=True)
        )

    def _score(self, reference: list[_Scale], levels: list[Planes]) -> float:
        averages: list[list[float]] = []
        for ref, level in zip(reference, levels, strict=True):
            xyb = loops.xyb(level, level, self._work)  # in place: the pyramid is complete
            sums = np.zeros(18, np.float64)
            loops.scale_sums((ref.xyb, ref.mu, ref.squares), xyb, _taps_array(), self._work, sums)
            count = level.shape[1] * level.shape[2]
            means = sums[:9] / count
            norms = (sums[9:] / count) ** 0.25
            averages.append([float(value) for value in (*means, *norms)])
        return _combine(averages)


def ssimulacra2(reference: Pixels, distorted: Pixels) -> float:
    """SSIMULACRA2 of ``distorted`` against ``reference`` (100: identical)."""
    return Reference(reference).score(distorted)


def _combine(averages: list[list[float]]) -> float:
    """The weighted sum and libjxl's mapping to the 0-100 scale. Per scale,
    ``averages`` holds the means of the SSIM, ringing and detail-lost maps
    of X, Y and B (bands 0-8), then their 4-norms (9-17)."""
    total = 0.0
    weight = iter(_WEIGHTS)
    for channel in range(3):
        for scale in averages:
            for norm in (0, 9):
                for kind in range(3):  # SSIM, ringing, detail lost
                    total += next(weight) * abs(scale[norm + kind * 3 + channel])
    total *= 0.9562382616834844
    total = (
        2.326765642916932 * total
        - 0.020884521182843837 * total * total
        + 6.248496625763138e-05 * total * total * total
    )
    if total <= 0:
        return 100.0
    return 100.0 - 10.0 * math.pow(total, 0.6276336467831387)
