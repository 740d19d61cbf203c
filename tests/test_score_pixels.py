"""The pixels a q=auto score reads: AVIF candidates decoded by libavif and
dav1d (through Pillow), the rest by libvips, all alike to the score."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from service.formats import OutputFormat
from service.render import score_pixels
from service.render.ssimulacra2 import Reference

from .conftest import SAMPLES


def _render(name: str, width: int = 640) -> pyvips.Image:
    image = pyvips.Image.thumbnail(str(SAMPLES / name), width)
    if image.hasalpha():
        image = image.flatten(background=[255.0, 255.0, 255.0])
    return image.colourspace("srgb").cast("uchar").copy_memory()


def _libvips_pixels(data: bytes) -> np.ndarray:
    return score_pixels.pixels_of(pyvips.Image.new_from_buffer(data, ""))


def test_the_installed_pillow_decodes_avif_with_dav1d() -> None:
    """The project's Pillow has libavif with dav1d: the fast path runs."""
    from PIL import _avif  # noqa: PLC0415

    assert score_pixels._set_up_pillow_avif()
    assert _avif.decoder_codec_available("dav1d")


@pytest.mark.parametrize("name", ["rocket.jpg", "chelsea.png", "retina.jpg"])
def test_an_avif_candidate_scores_as_libvips_decode_of_it_does(name: str) -> None:
    """dav1d and libvips' aom decode the same AV1 frame; their YUV to RGB
    differs at chroma edges (the test below), under half a point here and
    0.16 at most on the benchmark corpus' photos."""
    render = _render(name)
    reference = Reference(score_pixels.pixels_of(render))
    data = render.write_to_buffer(".avif", Q=60, effort=0)
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    theirs = _libvips_pixels(data)
    assert pixels.shape == theirs.shape == (render.height, render.width, 3)
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(np.int16) - theirs).mean() < 1.5
    assert abs(reference.score(pixels) - reference.score(theirs)) < 0.6


def test_libavif_upsamples_the_chroma_bilinearly_as_browsers_do() -> None:
    """Chrome decodes AVIF with libavif (its chroma upsampled bilinearly);
    libvips' libheif takes the nearest chroma sample. At a red-blue edge
    in 4:2:0, the pixel two left of it is already mixed in the first."""
    edge = np.zeros((64, 64, 3), np.uint8)
    edge[:, :33] = (220, 30, 30)
    edge[:, 33:] = (30, 30, 220)
    image = pyvips.Image.new_from_array(edge, interpretation="srgb")
    data = image.write_to_buffer(".avif", Q=100, effort=0, subsample_mode="on")
    ours = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    theirs = _libvips_pixels(data)
    assert 220 - int(ours[32, 31, 0]) > 10
    assert abs(220 - int(theirs[32, 31, 0])) <= 2


def _avif_with_alpha() -> tuple[pyvips.Image, bytes]:
    """The opaque render, and its AVIF with a left-to-right alpha ramp."""
    render = _render("chelsea.png", 320)
    ramp = pyvips.Image.xyz(render.width, render.height)[0] * (255 / render.width)
    return render, render.bandjoin(ramp.cast("uchar")).write_to_buffer(".avif", Q=60, effort=0)


def test_an_avif_with_alpha_keeps_it_when_asked() -> None:
    render, data = _avif_with_alpha()
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=True)
    theirs = _libvips_pixels(data)
    assert pixels.shape == theirs.shape == (render.height, render.width, 4)
    assert np.abs(pixels[..., 3].astype(np.int16) - theirs[..., 3]).max() <= 2


def test_alpha_on_an_opaque_renders_avif_is_blended_on_white_by_libvips() -> None:
    _, data = _avif_with_alpha()
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    blended = pyvips.Image.new_from_buffer(data, "").flatten(background=[255.0, 255.0, 255.0])
    np.testing.assert_array_equal(pixels, score_pixels.pixels_of(blended))


def test_a_grey_avif_is_made_colour() -> None:
    grey = _render("camera.png", 320).colourspace("b-w")
    data = grey.write_to_buffer(".avif", Q=60, effort=0)
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    assert pixels.shape == (grey.height, grey.width, 3)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


@pytest.mark.parametrize(
    ("output", "suffix"), [(OutputFormat.WEBP, ".webp"), (OutputFormat.JPEG, ".jpg")]
)
def test_other_formats_are_libvips_own_decode(output: OutputFormat, suffix: str) -> None:
    data = _render("rocket.jpg").write_to_buffer(suffix, Q=80)
    pixels = score_pixels.decoded_pixels(data, output, alpha=False)
    np.testing.assert_array_equal(pixels, _libvips_pixels(data))


def test_a_pillow_decode_takes_one_thread() -> None:
    """A render is one thread; the render slots already number the cores."""
    from PIL import AvifImagePlugin  # noqa: PLC0415

    data = _render("rocket.jpg", 160).write_to_buffer(".avif", Q=60, effort=0)
    score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    assert AvifImagePlugin.DEFAULT_MAX_THREADS == 1


def test_bytes_pillow_cannot_read_are_left_to_libvips() -> None:
    """Never seen with the service's encodes; the render goes on, and a
    WebP labelled AVIF is decoded by libvips as its own bytes say."""
    data = _render("rocket.jpg", 160).write_to_buffer(".webp", Q=80)
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    np.testing.assert_array_equal(pixels, _libvips_pixels(data))


def test_a_large_avif_is_left_to_libvips() -> None:
    """Pillow holds the GIL for part of its load, in proportion to the
    pixels: over PILLOW_MAX_PIXELS, libvips decodes."""
    side = int(score_pixels.PILLOW_MAX_PIXELS**0.5) + 8
    image = (pyvips.Image.xyz(side, side)[0] % 256).cast("uchar").bandjoin([0, 128])
    data = image.copy(interpretation="srgb").write_to_buffer(".avif", Q=60, effort=0)
    pixels = score_pixels.decoded_pixels(data, OutputFormat.AVIF, alpha=False)
    np.testing.assert_array_equal(pixels, _libvips_pixels(data))
