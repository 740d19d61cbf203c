"""The placeholders' encoders against the reference encoders' outputs
(tests/vectors/), and the dominant colour's rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.placeholders.blurhash import COMPONENTS, encode_blurhash
from service.placeholders.dominant import dominant_colour
from service.placeholders.thumbhash import rgba_to_thumbhash, thumbhash_base64

VECTORS = Path(__file__).parent / "vectors"
REFERENCE: dict[str, Any] = json.loads((VECTORS / "hash_vectors.json").read_text())


def _pixels(vector: dict[str, Any]) -> tuple[int, int, bytes]:
    rgba = (VECTORS / vector["pixels"]).read_bytes()
    assert len(rgba) == vector["width"] * vector["height"] * 4
    return vector["width"], vector["height"], rgba


def _named(vector: dict[str, Any]) -> str:
    return str(vector["name"])


@pytest.mark.parametrize("vector", REFERENCE["vectors"], ids=_named)
def test_thumbhash_equals_the_reference(vector: dict[str, Any]) -> None:
    """Our ThumbHash of each input is the reference JavaScript's, byte for byte."""
    assert thumbhash_base64(*_pixels(vector)) == vector["thumbhash"]


@pytest.mark.parametrize("vector", REFERENCE["vectors"], ids=_named)
def test_blurhash_equals_the_reference(vector: dict[str, Any]) -> None:
    """Our BlurHash of each input is the reference TypeScript's, character for character."""
    assert encode_blurhash(*_pixels(vector)) == vector["blurhash"]


def test_the_vectors_use_our_blurhash_components() -> None:
    """The reference strings were made with the components /info uses."""
    assert tuple(REFERENCE["blurhash_components"]) == COMPONENTS


def test_the_vectors_cover_alpha_grey_and_odd_shapes() -> None:
    """The inputs hold what the encoders treat apart: 1x1, a thin strip, alpha."""
    sizes = {(vector["width"], vector["height"]) for vector in REFERENCE["vectors"]}
    assert (1, 1) in sizes
    assert any(min(size) <= 2 < max(size) for size in sizes)
    assert any(_has_alpha(vector) for vector in REFERENCE["vectors"])


def _has_alpha(vector: dict[str, Any]) -> bool:
    rgba = _pixels(vector)[2]
    return any(alpha != 255 for alpha in rgba[3::4])


def test_thumbhash_refuses_more_than_100_pixels_a_side() -> None:
    """As the reference does: the hash keeps nothing more of a bigger image."""
    with pytest.raises(ValueError, match="doesn't fit"):
        rgba_to_thumbhash(101, 1, bytes(101 * 4))


def test_javascript_rounding_is_kept() -> None:
    """Halves round up as Math.round does (Python's round would give 0 for 0.5)."""
    from service.placeholders.thumbhash import _round  # noqa: PLC0415

    assert [_round(v) for v in (0.5, 1.5, 2.5, -0.5, 0.49999999999999994)] == [1, 2, 3, 0, 0]


def _solid(colour: tuple[int, int, int, int], count: int) -> bytes:
    return bytes(colour) * count


def test_dominant_is_the_most_common_colour_not_the_mean() -> None:
    """60 % red and 40 % green: red, where the mean would be a muddy brown."""
    rgba = _solid((220, 20, 20, 255), 60) + _solid((20, 200, 20, 255), 40)
    assert dominant_colour(10, 10, rgba) == "#dc1414"


def test_dominant_is_the_mean_of_its_cluster() -> None:
    """Shades within one coarse bin average to the picture's own shade."""
    rgba = _solid((200, 10, 10, 255), 3) + _solid((210, 20, 20, 255), 1)
    assert dominant_colour(2, 2, rgba) == "#cb0d0d"


def test_dominant_ignores_transparent_pixels() -> None:
    """A mostly transparent background does not make the colour black."""
    rgba = _solid((0, 0, 0, 0), 90) + _solid((10, 20, 200, 255), 10)
    assert dominant_colour(10, 10, rgba) == "#0a14c8"


def test_dominant_of_an_all_transparent_picture_uses_every_pixel() -> None:
    """With nothing visible, the pixels' own colour still answers."""
    assert dominant_colour(2, 1, _solid((30, 40, 50, 0), 2)) == "#1e2832"


def test_dominant_breaks_ties_by_the_lower_bin() -> None:
    """Two equally common colours give the same answer every time."""
    rgba = _solid((250, 250, 250, 255), 2) + _solid((5, 5, 5, 255), 2)
    assert dominant_colour(2, 2, rgba) == "#050505"
