"""Perceptual scores of a distorted image against its reference: SSIMULACRA2
and SSIM, on 8-bit sRGB arrays of the same size (height x width x 3 or 4).

SSIMULACRA2 (``ssimulacra2``, ``Reference``) is the service's own scorer,
``service/render/ssimulacra2.py``, the one q=auto searches with: numpy in
float32 planes. What follows here (``package_ssimulacra2``) is the
independent float64 pipeline it was built from and is checked against
(tests/test_auto_quality.py: within 0.05 on real images); both are held to
libjxl's own scores (tests/test_quality_scores.py).

The oracle is the ``ssimulacra2`` package's (0.3.0, PyPI) colour pipeline,
SSIM map, edge maps and weights, which follow libjxl's ``tools/ssimulacra2.cc``
line for line, with one part replaced: its blur. The package blurs with
``scipy.ndimage.gaussian_filter``, mirroring the image's left and right
edges; libjxl blurs with its recursive Gaussian (``FastGaussian``, sigma
1.5), which treats every pixel outside the image as zero. At the coarse
scales (1:16, 1:32: images of a few dozen pixels) the border is most of
the image, and the package's scores came out 1-4.6 points below libjxl's
own on the reference images (tests/test_quality_scores.py); with the
recursive Gaussian below, within 0.2. ``recursive_gaussian`` ports
libjxl's ``CreateRecursiveGaussian`` (Charalampidis 2016, three
second-order sections) and its zero-padded 1-D scan (``lfilter``); the scan
is exactly a 9-tap filter, applied as one.

Images with alpha are scored as libjxl's tool scores them: blended on a
dark (0.1) and a light (0.9) grey, the lower score kept.

SSIM is scikit-image's ``structural_similarity`` with Wang et al.'s
settings (Gaussian window, sigma 1.5, population covariance), averaged over
R, G and B.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy import ndimage, signal
from skimage.metrics import structural_similarity
from ssimulacra2 import ssimulacra2 as _package

from service.render import ssimulacra2 as _service

Pixels = npt.NDArray[np.uint8]
Planes = npt.NDArray[np.float64]

SIGMA = 1.5
SCALES = 6


# libjxl's recursive Gaussian coefficients (CreateRecursiveGaussian): the
# service's solve, shared; what this oracle keeps apart is the float64
# scan and scoring below.
recursive_gaussian = cache(_service.recursive_gaussian)


def _scan(line: Planes) -> Planes:
    """libjxl's 1-D scan of ``line``: out[n] is the sum over the sections of
    y[n] = n2 (in[n-N-1] + in[n+N-1]) - d1 y[n-1] - y[n-2], zero outside."""
    radius, n2, d1 = recursive_gaussian()
    size = line.shape[0]
    padded = np.zeros(size + 2 * radius + 2)
    padded[radius + 1 : radius + 1 + size] = line
    n = np.arange(-radius + 1, size)
    both = padded[n] + padded[n + 2 * radius]  # in[n-N-1] + in[n+N-1], offset N+1
    out = sum(signal.lfilter([k], [1.0, d, 1.0], both) for k, d in zip(n2, d1, strict=True))
    return np.asarray(out)[radius - 1 :]


@cache
def kernel() -> Planes:
    """The scan's impulse response. Its poles cancel: the recursion is
    exactly a (2N-1)-tap filter (9 taps at sigma 1.5), so the blur is that
    filter with zeros outside the image, 20x faster than the recursion."""
    radius = recursive_gaussian()[0]
    impulse = np.zeros(4 * radius + 1)
    impulse[2 * radius] = 1.0
    response = _scan(impulse)
    return response[radius + 1 : 3 * radius]


def blur(planes: Planes) -> Planes:
    """The recursive Gaussian over rows, then columns (libjxl's FastGaussian)."""
    taps = kernel()
    rows = ndimage.correlate1d(planes, taps, axis=1, mode="constant")
    return np.asarray(ndimage.correlate1d(rows, taps, axis=0, mode="constant"))


def _xyb(linear: Planes) -> Planes:
    return np.asarray(_package.make_positive_xyb(_package.linear_rgb_to_xyb(linear)))


@dataclass(frozen=True, slots=True)
class _Scale:
    """One scale of the reference: XYB, its blur and the blur of its square."""

    xyb: Planes
    mu: Planes
    sigma: Planes


def _pyramid(image: Planes) -> list[Planes]:
    """Linear RGB at the scales (halved in linear RGB, as libjxl does)."""
    linear = np.asarray(_package.srgb_to_linear(image))
    levels: list[Planes] = []
    while len(levels) < SCALES and linear.shape[0] >= 8 and linear.shape[1] >= 8:
        levels.append(linear)
        linear = _package.downsample(linear, 2, 2)
    return levels


class Reference:
    """A reference image prepared once (its half of every scale) for many
    scores: the service's scorer."""

    def __init__(self, pixels: Pixels) -> None:
        self._reference = _service.Reference(pixels)

    def ssimulacra2(self, distorted: Pixels) -> float:
        """SSIMULACRA2 of ``distorted`` against this reference (100: identical)."""
        return self._reference.score(distorted)


class PackageReference:
    """The oracle's reference: the package's float64 pipeline, libjxl's blur."""

    def __init__(self, pixels: Pixels) -> None:
        self.shape = pixels.shape
        self.alpha = pixels.shape[2] == 4
        backgrounds = (0.1, 0.9) if self.alpha else (None,)
        self._scales = {grey: self._prepare(_on_grey(pixels, grey)) for grey in backgrounds}

    @staticmethod
    def _prepare(image: Planes) -> list[_Scale]:
        scales = []
        for linear in _pyramid(image):
            xyb = _xyb(linear)
            scales.append(_Scale(xyb, blur(xyb), blur(xyb * xyb)))
        return scales

    def ssimulacra2(self, distorted: Pixels) -> float:
        """SSIMULACRA2 of ``distorted`` against this reference (100: identical)."""
        if distorted.shape[:2] != self.shape[:2]:
            raise ValueError(f"sizes differ: {self.shape[:2]} and {distorted.shape[:2]}")
        alpha = self.alpha or distorted.shape[2] == 4
        if alpha and not self.alpha:
            raise ValueError("the distorted image has alpha, the reference has not")
        return min(
            self._score(scales, _on_grey(distorted, grey)) for grey, scales in self._scales.items()
        )

    @staticmethod
    def _score(reference: list[_Scale], image: Planes) -> float:
        msssim = _package.Msssim()
        for ref, linear in zip(reference, _pyramid(image), strict=True):
            xyb = _xyb(linear)
            mu = blur(xyb)
            one = _package.MsssimScale()
            one.avg_ssim = _package.ssim_map(
                ref.mu, mu, ref.sigma, blur(xyb * xyb), blur(ref.xyb * xyb)
            )
            one.avg_edgediff = _package.edge_diff_map(ref.xyb, ref.mu, xyb, mu)
            msssim.scales.append(one)
        return float(msssim.score())


def _on_grey(pixels: Pixels, grey: float | None) -> Planes:
    """RGB(A) in 0..255 floats; alpha blended on ``grey`` (0..1), in sRGB
    values as libjxl's AlphaBlend does."""
    values = pixels.astype(np.float64) / 255.0
    if values.shape[2] == 4 and grey is not None:
        alpha = values[:, :, 3:4]
        values = values[:, :, :3] * alpha + (1.0 - alpha) * grey
    return values[:, :, :3] * 255.0


def ssimulacra2(reference: Pixels, distorted: Pixels) -> float:
    """SSIMULACRA2 of ``distorted`` against ``reference`` (100: identical),
    by the service's scorer."""
    return _service.ssimulacra2(reference, distorted)


def package_ssimulacra2(reference: Pixels, distorted: Pixels) -> float:
    """The same by the oracle (float64, the package's pipeline)."""
    return PackageReference(reference).ssimulacra2(distorted)


def ssim(reference: Pixels, distorted: Pixels) -> float:
    """SSIM of the RGB of ``distorted`` against ``reference`` (1.0: identical)."""
    _check(reference, distorted)
    value = structural_similarity(  # type: ignore[no-untyped-call]
        reference[:, :, :3],
        distorted[:, :, :3],
        channel_axis=2,
        data_range=255,
        gaussian_weights=True,
        sigma=SIGMA,
        use_sample_covariance=False,
    )
    return float(value)


def _check(reference: Pixels, distorted: Pixels) -> None:
    if reference.shape[:2] != distorted.shape[:2]:
        raise ValueError(f"sizes differ: {reference.shape[:2]} and {distorted.shape[:2]}")
